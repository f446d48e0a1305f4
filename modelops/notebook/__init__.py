"""What notebooks use beside the library's calls: gluing records, values and figures (glue), and the plots."""
