# A production gunicorn.conf.py in the style of gunicorn's documentation.
import multiprocessing

wsgi_app = "myapp:application"
bind = "127.0.0.1:8001"
workers = multiprocessing.cpu_count() * 2 + 1
timeout = 60
graceful_timeout = 20
keepalive = 5
max_requests = 1000
max_requests_jitter = 50
umask = 0o007

accesslog = "-"
errorlog = "-"
loglevel = "warning"
access_log_format = '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'

raw_env = [
    "DJANGO_SETTINGS_MODULE=mysite.settings",
    "APP_ENV=production",
]
forwarded_allow_ips = "*"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# Not settings: gunicorn ignores such names, and so does ferricorn.
PROJECT = "mysite"
helper_value = 42


def when_ready(server):
    server.log.info("Server is ready. Spawning workers")


def post_fork(server, worker):
    server.log.info("Worker spawned (pid: %s)", worker.pid)
