workers = 2
timeout = "soon"
