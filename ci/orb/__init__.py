"""CircleCI's path-filtering orb as this project uses it: the setup config's mapping (mapping), how the orb's
script reads git's list of changed files (words), and the parameters it then sets (decision)."""
