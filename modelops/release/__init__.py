"""Release: deploying an approved package to an environment (deploy), the promotion gate on staging (gate), and what
served when (history)."""
