"""What notebooks use beside the library's calls: gluing records, values and figures (glue), the plots, and the
candidate train_register evaluates, registers and glues (candidate)."""
