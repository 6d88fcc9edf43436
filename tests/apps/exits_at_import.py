"""A module that kills its process while being imported (not an exception):
a worker boot failure that is not an app import error."""
import os

os._exit(1)
