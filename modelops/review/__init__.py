"""Review: scoring a trained model (evaluation), registering it (packages, lineage), and the verdict against the
champion (verdict, bootstrap)."""
