# A syntax error on line 3.
workers = 2
timeout = = 5
