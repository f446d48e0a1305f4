"""What several test modules share and is not a fixture: paths, servers, AWS on moto, git projects, tables."""
