"""What several test modules share and is not a fixture (fixtures are in tests/conftest.py).

paths (the repository, the real data, the fixture notebooks), servers (a file server, stopping a home's endpoints),
aws (moto and the sagemaker backend on it), hosting (SageMaker hosting for moto), batch (its batch transform),
contract (a backend per side of a contract suite), registry (versions to register), served (a local endpoint with
three versions), gitrepo and projects (throwaway git projects and the CLI in them), monitoring, model_monitor (Model
Monitor's operations on a Stubber), tables, orbscript, browser.
"""
