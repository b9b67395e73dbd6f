"""RefSet settings: one module, driven by environment variables.

Each variable is documented where it is read. Nothing here has a second
settings file: tests, the demo and production differ only by environment.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.utils.translation import gettext_lazy as _

from annotation_server.env import env_bool, env_database, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# REFSET_VAR_DIR: where the embedded database, stored files and logs live.
VAR_DIR = Path(env_str("REFSET_VAR_DIR", str(BASE_DIR / "var")))

# DJANGO_DEBUG: 0 in production. REFSET_DEMO: 1 for the embedded demo's server
# (`manage.py serve`, `make demo`, sets it with DJANGO_DEBUG=0 for the gunicorn it
# starts): DEBUG off, friendly error pages, but plain HTTP on loopback, the demo
# keys, and a banner on every page. PRODUCTION: DEBUG off and not the demo.
# DJANGO_SECRET_KEY: signing key. The default is for the demo only; production
# refuses to start without one.
DEBUG = env_bool("DJANGO_DEBUG", True)
DEMO = env_bool("REFSET_DEMO", False)
PRODUCTION = not DEBUG and not DEMO
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=0.")
    SECRET_KEY = "refset-demo-only-insecure-key-change-me-0123456789abcdef"

# DJANGO_ALLOWED_HOSTS: comma-separated host names this server answers for.
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# DATABASE_URL: postgresql://user:pass@host:port/name. Unset: embedded SQLite
# in REFSET_VAR_DIR (demo only; said at start-up). Set but wrong: start-up stops.
_db, EMBEDDED_DATABASE = env_database("DATABASE_URL", str(VAR_DIR / "refset.sqlite3"))
DATABASES = {"default": _db}
if EMBEDDED_DATABASE:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
# REFSET_SQLITE_TIMEOUT: on SQLite (embedded, or DATABASE_URL=sqlite:///...) every
# transaction takes the write lock when it begins (BEGIN IMMEDIATE) and waits up to
# this many seconds for it (default 60), so concurrent writers queue instead of
# failing with "database is locked" and losing their audit events.
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {}).update(
        transaction_mode="IMMEDIATE", timeout=env_int("REFSET_SQLITE_TIMEOUT", 60)
    )
# Connection pooling (PostgreSQL). Each web or worker process keeps one
# connection per thread between requests/jobs for REFSET_DB_CONN_MAX_AGE seconds
# (default 60; 0 closes it at the end of every request, what a pooler in front
# of PostgreSQL makes cheap). REFSET_DB_CONN_HEALTH_CHECKS (default on): a kept
# connection is tested before a request reuses it, so a database restart or a
# pooler that dropped it costs one reconnect, not a failed request.
# Behind pgbouncer in transaction pooling mode (pool_mode = transaction), set
# REFSET_DB_DISABLE_SERVER_SIDE_CURSORS=1: a named cursor (QuerySet.iterator())
# lives across statements of one connection, which a transaction pooler may hand
# to another client between them. Session state (SET, advisory locks held
# across transactions, LISTEN) is not used by RefSet, so transaction pooling is
# otherwise safe; keep CONN_MAX_AGE > 0 there (connections to pgbouncer are
# cheap to keep, pgbouncer multiplexes them onto its own server pool).
_db["CONN_MAX_AGE"] = env_int("REFSET_DB_CONN_MAX_AGE", 60)
_db["CONN_HEALTH_CHECKS"] = env_bool("REFSET_DB_CONN_HEALTH_CHECKS", True)
if _db["ENGINE"] != "django.db.backends.sqlite3":
    _db["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("REFSET_DB_DISABLE_SERVER_SIDE_CURSORS", False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# CELERY_BROKER_URL: redis://127.0.0.1:6379/0. Unset: jobs run in-process right
# after the transaction that queued them commits (demo only; said at start-up).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
IN_PROCESS_JOBS = not CELERY_BROKER_URL
CELERY_TASK_ALWAYS_EAGER = IN_PROCESS_JOBS
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# REFSET_CELERY_QUEUE: the queue web processes send to and workers consume.
CELERY_TASK_DEFAULT_QUEUE = env_str("REFSET_CELERY_QUEUE", "celery")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# REFSET_INFERENCE_QUEUE: the queue model-inference jobs (registry.JOB_QUEUES:
# reading.prelabel) are sent to, so inference workers can be GPU machines
# (`celery -A annotation_server worker -Q inference`); run at least one worker
# on it. Empty: they go to the default queue with every other job.
REFSET_INFERENCE_QUEUE = env_str("REFSET_INFERENCE_QUEUE", "inference")
# The other job queues (registry.JOB_QUEUES), each empty by default (the default
# queue): set one to run that work on the hosts whose workers consume it, e.g.
# REFSET_INGEST_QUEUE=ingest and `celery ... worker -Q ingest` on the import hosts.
# REFSET_INGEST_QUEUE: imports, PACS pulls, series streams.
# REFSET_QC_QUEUE: image-quality checks. REFSET_EXPORT_QUEUE: export packages and
# evaluations of AI products.
REFSET_INGEST_QUEUE = env_str("REFSET_INGEST_QUEUE", "")
REFSET_QC_QUEUE = env_str("REFSET_QC_QUEUE", "")
REFSET_EXPORT_QUEUE = env_str("REFSET_EXPORT_QUEUE", "")
# REFSET_BROKER_VISIBILITY_TIMEOUT_S: a message a worker took but did not
# acknowledge (acks_late: it acknowledges when the job is done) goes back to the
# queue after this long, so it must be longer than the longest job (default 12 h);
# a job redelivered while its first run is alive is refused by the Job row's claim.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("REFSET_BROKER_VISIBILITY_TIMEOUT_S", 12 * 3600)
}
# A prefork child killed mid-task (out of memory...) puts its message back.
CELERY_TASK_REJECT_ON_WORKER_LOST = True

# What this process is, as /healthz reports it. REFSET_ROLE: "web" (default),
# "worker", "beat" or "listener" (the DICOM listener), or several joined by "+"
# ("web+beat"). REFSET_WORKER_QUEUES: the queues a worker consumes, the same
# comma-separated list given to `celery -A annotation_server worker -Q ...`
# (reported as given; e.g. "ingest,qc" or "celery").
REFSET_ROLE = env_str("REFSET_ROLE", "web")
REFSET_ROLES = [r.strip().lower() for r in REFSET_ROLE.split("+") if r.strip()]
if not REFSET_ROLES or set(REFSET_ROLES) - {"web", "worker", "beat", "listener"}:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"REFSET_ROLE={REFSET_ROLE!r}: use web, worker, beat or listener, "
        "or several joined by + (web+beat)."
    )
REFSET_WORKER_QUEUES = env_list("REFSET_WORKER_QUEUES", [])

# Periodic work (annotation_server/web/periodic.py, the one table of it):
# `celery -A annotation_server beat` sends each entry below on its schedule; a
# worker of the default queue queues it as a Job (so its result is kept and
# shown); without a broker (the embedded demo) `manage.py run_periodic [name]`
# runs the same jobs, e.g. from cron.
# REFSET_OVERDUE_REMINDER_MIN: minutes between overdue-read reminder runs
# (default 60). REFSET_AUDIT_VERIFY_HOUR / _MINUTE: when the nightly audit-chain
# verification runs (default 02:30, in TIME_ZONE). REFSET_CLEANUP_MIN: minutes
# between cleanups of orphaned uploads and `.part-*` leftovers (default 60);
# REFSET_CLEANUP_AFTER_H: how old such a leftover must be before it is removed
# (default 24 hours: longer than any import or export). REFSET_BEAT_SCHEDULE_FILE:
# where beat keeps its last-run times (default REFSET_VAR_DIR/celerybeat-schedule).
REFSET_OVERDUE_REMINDER_MIN = env_int("REFSET_OVERDUE_REMINDER_MIN", 60)
REFSET_AUDIT_VERIFY_HOUR = env_int("REFSET_AUDIT_VERIFY_HOUR", 2)
REFSET_AUDIT_VERIFY_MINUTE = env_int("REFSET_AUDIT_VERIFY_MINUTE", 30)
REFSET_CLEANUP_MIN = env_int("REFSET_CLEANUP_MIN", 60)
REFSET_CLEANUP_AFTER_H = env_int("REFSET_CLEANUP_AFTER_H", 24)
CELERY_BEAT_SCHEDULE_FILENAME = env_str(
    "REFSET_BEAT_SCHEDULE_FILE", str(VAR_DIR / "celerybeat-schedule")
)


def _beat_schedule() -> dict:
    from celery.schedules import crontab

    def entry(name: str, schedule) -> dict:
        return {"task": "refset.periodic", "schedule": schedule, "args": (name,)}

    return {
        "overdue-reminders": entry(
            "overdue_reminders", timedelta(minutes=REFSET_OVERDUE_REMINDER_MIN)
        ),
        "verify-audit-chain": entry(
            "verify_audit",
            crontab(hour=REFSET_AUDIT_VERIFY_HOUR, minute=REFSET_AUDIT_VERIFY_MINUTE),
        ),
        "cleanup": entry("cleanup", timedelta(minutes=REFSET_CLEANUP_MIN)),
    }


CELERY_BEAT_SCHEDULE = _beat_schedule()
# Alerts (the nightly audit verification finding the chain broken) are logged at
# ERROR and mailed to REFSET_ALERT_EMAILS (comma-separated; empty: logged only),
# from REFSET_ALERT_FROM, through the SMTP server REFSET_SMTP_HOST:REFSET_SMTP_PORT
# (default localhost:25). Not Django's ADMINS: those would also get every
# server error's traceback, which can hold patient data.
REFSET_ALERT_EMAILS = env_list("REFSET_ALERT_EMAILS", [])
SERVER_EMAIL = DEFAULT_FROM_EMAIL = env_str("REFSET_ALERT_FROM", "refset@localhost")
EMAIL_HOST = env_str("REFSET_SMTP_HOST", "localhost")
EMAIL_PORT = env_int("REFSET_SMTP_PORT", 25)
# REFSET_JOB_LEASE_S: a worker running a job renews its lease (Job.heartbeat_at)
# every third of this many seconds. A running job whose lease ran out belongs to a
# worker that died: every worker looks for such jobs when it starts and then every
# half lease, and hands each to the queue again (see jobs.services.recover_stale).
# REFSET_JOB_MAX_ATTEMPTS: starts of one job; when its worker died on the last
# one, the job is failed with a clear error instead of being run again.
REFSET_JOB_LEASE_S = env_int("REFSET_JOB_LEASE_S", 120)
REFSET_JOB_MAX_ATTEMPTS = env_int("REFSET_JOB_MAX_ATTEMPTS", 3)

# The DICOM listener (`manage.py dicom_listener`, imaging.dimse.listener):
# REFSET_DICOM_AE_TITLE, its AE title (also RefSet's calling AE title as an SCU and
# the destination of its C-MOVE requests); REFSET_DICOM_PORT; REFSET_DICOM_BIND
# (127.0.0.1; 0.0.0.0 to take associations from other hosts);
# REFSET_DICOM_MAX_ASSOCIATIONS, associations served at once.
# REFSET_DIMSE_MOVE_WAIT_S: how long a C-MOVE pull waits for the listener to import
# what the PACS sent.
REFSET_DICOM_AE_TITLE = env_str("REFSET_DICOM_AE_TITLE").strip() or "REFSET"
REFSET_DICOM_PORT = env_int("REFSET_DICOM_PORT", 11112)
REFSET_DICOM_BIND = env_str("REFSET_DICOM_BIND").strip() or "127.0.0.1"
REFSET_DICOM_MAX_ASSOCIATIONS = env_int("REFSET_DICOM_MAX_ASSOCIATIONS", 10)
REFSET_DIMSE_MOVE_WAIT_S = env_int("REFSET_DIMSE_MOVE_WAIT_S", 300)

# Write-back (annotation_server.outbox): an outbox item is tried at most
# REFSET_OUTBOX_MAX_ATTEMPTS times, waiting REFSET_OUTBOX_BACKOFF_S, then twice
# that, ... (at most REFSET_OUTBOX_MAX_DELAY_S) between attempts, then it is
# failed (a manager may retry it). REFSET_OUTBOX_TIMEOUT_S: network timeout of one
# STOW-RS / QIDO-RS request or DIMSE exchange.
REFSET_OUTBOX_MAX_ATTEMPTS = env_int("REFSET_OUTBOX_MAX_ATTEMPTS", 5)
REFSET_OUTBOX_BACKOFF_S = env_int("REFSET_OUTBOX_BACKOFF_S", 5)
REFSET_OUTBOX_MAX_DELAY_S = env_int("REFSET_OUTBOX_MAX_DELAY_S", 120)
REFSET_OUTBOX_TIMEOUT_S = env_int("REFSET_OUTBOX_TIMEOUT_S", 30)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "annotation_server.accounts",
    "annotation_server.audit",
    "annotation_server.jobs",
    "annotation_server.imaging",
    "annotation_server.quality",
    "annotation_server.projects",
    "annotation_server.reading",
    "annotation_server.adjudication",
    "annotation_server.qualification",
    "annotation_server.datasets",
    "annotation_server.outbox",
    "annotation_server.agreement",
    "annotation_server.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "annotation_server.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    # 400 for NUL in the path or query (PostgreSQL text cannot hold it; was 500)
    "annotation_server.request_guard.RejectNulMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "annotation_server.errors.DomainErrorMiddleware",
    # last: turns a lockout that axes flagged during sign-in into the lockout page
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "annotation_server.urls"
WSGI_APPLICATION = "annotation_server.wsgi.application"
ASGI_APPLICATION = "annotation_server.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend_templates" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "annotation_server.web.context.refset",
                "annotation_server.projects.context.console_nav",
            ],
        },
    },
]

AUTHENTICATION_BACKENDS = [
    # first: refuses a locked-out account before its password is checked
    "annotation_server.accounts.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# Passwords: not like the username/e-mail, at least 8 characters, not a common
# password, not all digits (a phone number or a date of birth).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Lockout after wrong passwords (django-axes; annotation_server/accounts/lockout.py):
# the sign-in form, HTTP Basic on the API and DICOMweb, and the arbitration
# signature's password all count, per account (user name), not per address.
# REFSET_LOGIN_FAILURE_LIMIT: wrong passwords in a row that lock an account
# (default 5). REFSET_LOGIN_COOLOFF_MINUTES: how long the lock lasts (default 15);
# 0 keeps it until an administrator runs `manage.py unlock_account USERNAME
# --reason ...` (audited). A successful sign-in on the form forgets earlier failures.
AXES_FAILURE_LIMIT = env_int("REFSET_LOGIN_FAILURE_LIMIT", 5)
_cool_off_minutes = env_int("REFSET_LOGIN_COOLOFF_MINUTES", 15)
AXES_COOLOFF_TIME = timedelta(minutes=_cool_off_minutes) if _cool_off_minutes > 0 else None
# Per account only: the readers of one hospital often share one outgoing address,
# and five typos among them must not lock the whole department out.
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
# A try while locked does not restart the cool-off (a script retrying with the right
# password would otherwise stay locked for ever).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "annotation_server.accounts.lockout.lockout_response"
AXES_ENABLE_ADMIN = False  # accounts/admin.py shows the records read-only
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
ANONYMOUS_USER_NAME = None  # guardian: no anonymous object permissions

# Languages: the UI speaks Simplified Chinese and English.
# DJANGO_LANGUAGE_CODE picks the default for users who have not chosen.
LANGUAGE_CODE = env_str("DJANGO_LANGUAGE_CODE", "zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "annotation_server" / "locale"]
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "Asia/Shanghai")
CELERY_TIMEZONE = TIME_ZONE  # beat's crontab entries (the nightly audit check) in local time
# Date and time formats per language (annotation_server/formats/): templates name
# a format (|date:"SHORT_DATETIME_FORMAT"), never a pattern; times in TIME_ZONE.
FORMAT_MODULE_PATH = ["annotation_server.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "frontend_templates" / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# WhiteNoise serves static files in every mode, DEBUG or not, straight from the
# finders (frontend_templates/static and the apps' static/), indexed once at
# start-up: the embedded demo needs no collectstatic step and never serves a stale
# copy. Files a deployment collects into STATIC_ROOT are served as well.
WHITENOISE_USE_FINDERS = True

# Stored files (content-addressed DICOM, thumbnails and series streams, uploads
# waiting for their import job, audit anchors, assist-model weights) go through
# Django's storage API; no process assumes another's disk.
# REFSET_STORAGE_BACKEND: "filesystem" (default: files under REFSET_MEDIA_ROOT, for
# one machine and `make demo`), "s3" (S3-compatible object storage through
# django-storages: AWS S3, MinIO, SeaweedFS, Ceph RGW...; every web node and
# worker points at the same bucket), or a storage class path.
MEDIA_ROOT = Path(env_str("REFSET_MEDIA_ROOT", str(VAR_DIR / "media")))
# REFSET_EXPORT_DIR: where dataset packages and their zips are written (one folder
# per project; the `datasets.export` job and the download page read them there).
REFSET_EXPORT_DIR = Path(env_str("REFSET_EXPORT_DIR", str(VAR_DIR / "exports")))
# REFSET_ASSIST_MODEL_CACHE: where a worker keeps local copies of registered
# assist models (plug-ins, retrained built-ins); the originals are in the
# storage under assist-models/<sha256 of its files>/, and a copy's weights are
# checked against their sha256 before use.
REFSET_ASSIST_MODEL_CACHE = Path(
    env_str("REFSET_ASSIST_MODEL_CACHE", str(VAR_DIR / "assist-models"))
)
MEDIA_URL = "/media/"
STORAGE_BACKENDS = {
    "filesystem": "django.core.files.storage.FileSystemStorage",
    "s3": "storages.backends.s3.S3Storage",
}
_storage_backend = env_str("REFSET_STORAGE_BACKEND", "filesystem")
_storage_backend = STORAGE_BACKENDS.get(_storage_backend, _storage_backend)
# With "s3" (or storages.backends.s3.S3Storage):
# REFSET_S3_BUCKET: the bucket (required; created beforehand by the operator).
# REFSET_S3_ENDPOINT_URL: the server, e.g. http://10.0.0.5:8333 (empty: AWS S3).
# REFSET_S3_ACCESS_KEY_ID / REFSET_S3_SECRET_ACCESS_KEY: the credentials (empty:
# boto3's own chain: AWS_* variables, ~/.aws, an instance role).
# REFSET_S3_REGION: the signing region (default us-east-1; most S3-compatible
# servers accept any). REFSET_S3_ADDRESSING_STYLE: "path" (default: bucket in the
# URL path, what self-hosted servers serve), "virtual" (bucket as a host name) or
# "auto". REFSET_S3_PREFIX: a folder inside the bucket for every key (default none).
# Objects are never overwritten by another name's bytes (file_overwrite off: a
# name taken gets a suffix, as on disk) and never public (no ACL, signed URLs).
STORAGE_OPTIONS: dict = {}
if _storage_backend == STORAGE_BACKENDS["s3"]:
    from django.core.exceptions import ImproperlyConfigured

    if not env_str("REFSET_S3_BUCKET"):
        raise ImproperlyConfigured("REFSET_STORAGE_BACKEND=s3 needs REFSET_S3_BUCKET.")
    _addressing = env_str("REFSET_S3_ADDRESSING_STYLE", "path")
    if _addressing not in ("path", "virtual", "auto"):
        raise ImproperlyConfigured(
            f"REFSET_S3_ADDRESSING_STYLE={_addressing!r}: use path, virtual or auto."
        )
    STORAGE_OPTIONS = {
        "bucket_name": env_str("REFSET_S3_BUCKET"),
        "endpoint_url": env_str("REFSET_S3_ENDPOINT_URL") or None,
        "access_key": env_str("REFSET_S3_ACCESS_KEY_ID") or None,
        "secret_key": env_str("REFSET_S3_SECRET_ACCESS_KEY") or None,
        "region_name": env_str("REFSET_S3_REGION", "us-east-1"),
        "addressing_style": _addressing,
        "location": env_str("REFSET_S3_PREFIX").strip("/"),
        "file_overwrite": False,
        "default_acl": None,
        "querystring_auth": True,
    }
STORAGES = {
    "default": {"BACKEND": _storage_backend, "OPTIONS": STORAGE_OPTIONS},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# REFSET_STORAGE_CACHE_DIR: this node's local cache of stored files it reads when
# the storage is remote (S3): instances, series streams and thumbnails, whose
# keys are content-addressed, so a cached copy never goes stale. Only a cache:
# deleting it loses nothing (files are fetched again). Each node has its own;
# never share one between hosts. REFSET_STORAGE_CACHE_MB: its size; past it the
# least recently used files are removed (default 10240).
REFSET_STORAGE_CACHE_DIR = Path(env_str("REFSET_STORAGE_CACHE_DIR", str(VAR_DIR / "storage-cache")))
REFSET_STORAGE_CACHE_MB = env_int("REFSET_STORAGE_CACHE_MB", 10240)

# REFSET_KEY_ENCRYPTION_KEY: Fernet key that encrypts the de-identification key
# store (project secrets, original identifiers). Required when DJANGO_DEBUG=0.
REFSET_KEY_ENCRYPTION_KEY = env_str("REFSET_KEY_ENCRYPTION_KEY", "")
if DEMO and not DEBUG and not REFSET_KEY_ENCRYPTION_KEY:
    # The demo's server runs with DEBUG off: give it the key the demo seeding
    # (DEBUG on) derives from the demo secret key, so both read the same key store.
    import base64
    import hashlib

    REFSET_KEY_ENCRYPTION_KEY = base64.urlsafe_b64encode(
        hashlib.sha256(SECRET_KEY.encode()).digest()
    ).decode()

# REFSET_AUDIT_ANCHOR_KEY: HMAC-SHA256 key that signs the audit-chain anchors
# (checkpoints of the chain's head kept in storage under audit/anchors/ and in the
# log; `manage.py anchor_audit`, `verify_audit`). Unset: a key derived from
# DJANGO_SECRET_KEY with its own salt. Set it (and keep it away from the database
# and the storage) so that someone who can rewrite both cannot forge anchors.
REFSET_AUDIT_ANCHOR_KEY = env_str("REFSET_AUDIT_ANCHOR_KEY", "")

# Ingest limits, on uploads, STOW-RS and import_dicom.
# REFSET_MAX_FILE_MB: largest single file accepted (a zip, a zip member, a STOW
# part); REFSET_ZIP_MAX_TOTAL_MB / REFSET_ZIP_MAX_RATIO: zip-bomb guards (total
# uncompressed size of one archive, and uncompressed/compressed ratio of each
# member of 1 MiB or more); REFSET_IMPORT_MAX_TOTAL_MB: expanded bytes one import
# (one upload, one STOW request) may take in all, files and zip members together.
# A file over a limit is refused with a reason naming the setting; the rest of the
# import goes on.
REFSET_MAX_FILE_MB = env_int("REFSET_MAX_FILE_MB", 512)
REFSET_ZIP_MAX_TOTAL_MB = env_int("REFSET_ZIP_MAX_TOTAL_MB", 20_000)
REFSET_ZIP_MAX_RATIO = env_int("REFSET_ZIP_MAX_RATIO", 200)
REFSET_IMPORT_MAX_TOTAL_MB = env_int("REFSET_IMPORT_MAX_TOTAL_MB", 50_000)

# PACS destinations a manager may save and the server may connect to (the token
# or password is sent there). Comma-separated: host names ("pacs.hospital.cn",
# any port), host:port ("10.2.3.4:8042", "[fd00::5]:8042") or networks in CIDR
# form ("10.2.0.0/16": a host name must resolve only inside it). Empty: none.
REFSET_PACS_ALLOWED_HOSTS = env_list("REFSET_PACS_ALLOWED_HOSTS", [])
# Ingest parallelism. REFSET_INGEST_WORKERS: forked processes that read, de-identify,
# encode and store files (0: one per CPU; 1: in the importing process); the embedded
# demo always imports serially. REFSET_INGEST_STORE_THREADS: storage writer threads
# of the serial path.
REFSET_INGEST_WORKERS = env_int("REFSET_INGEST_WORKERS", 0)
REFSET_INGEST_STORE_THREADS = env_int("REFSET_INGEST_STORE_THREADS", 2)
# Burned-in text (PS3.15 Clean Pixel Data): ingest reads the corners and borders of
# every image whose header raises no flag with Tesseract (chi_sim+eng) and sends
# images with text to quarantine. Off only for benchmarks of the rest of ingest.
REFSET_BURNED_IN_OCR = env_bool("REFSET_BURNED_IN_OCR", True)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("REFSET_UPLOAD_MAX_FILES", 5000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "annotation_server.accounts.lockout.LockoutAwareBasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "annotation_server.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": env_int("REFSET_API_PAGE_SIZE", 100),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "annotation_server.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RefSet API",
    "DESCRIPTION": "Reference datasets for medical-imaging AI: reading, arbitration, export.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # `check --deploy` is about the deployment; schema warnings are the API's
    # documentation quality (see them with `manage.py spectacular --validate`).
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
    # Several models name their choices `State`; give each its own schema name.
    "ENUM_NAME_OVERRIDES": {
        "ArbitrationTaskStateEnum": "annotation_server.adjudication.models.ArbitrationTask.State",
        "ProjectStatusEnum": "annotation_server.projects.models.Project.Status",
        "WritebackDestinationKindEnum": "annotation_server.outbox.models.Destination.Kind",
        "EvaluationKindEnum": "annotation_server.datasets.models.Evaluation.Kind",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("REFSET_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # "Task refset.run_job[...] succeeded" per job: the Job row records that.
        "celery.app.trace": {"level": "WARNING"},
        # highdicom logs every module it copies into a SEG/SR at INFO.
        "highdicom": {"level": "WARNING"},
    },
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"

# HTTPS. In production (DJANGO_DEBUG=0, not the demo) each defaults to on; the
# demo and development serve plain HTTP on loopback.
# DJANGO_SECURE_SSL_REDIRECT: redirect http:// to https:// (off when the proxy in
# front already does it and you prefer it there).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
# DJANGO_SECURE_COOKIES: session and CSRF cookies only over HTTPS.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", PRODUCTION)
# DJANGO_HSTS_SECONDS: Strict-Transport-Security max-age (production default one
# year; 0 turns HSTS off). DJANGO_HSTS_INCLUDE_SUBDOMAINS, DJANGO_HSTS_PRELOAD: the
# header's includeSubDomains and preload (default on with HSTS). Turning one off is a
# deliberate choice, so its `check --deploy` warning (W005, W021) is then silenced.
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", PRODUCTION)
SILENCED_SYSTEM_CHECKS = [
    check
    for check, chosen in (
        ("security.W005", "DJANGO_HSTS_INCLUDE_SUBDOMAINS"),
        ("security.W021", "DJANGO_HSTS_PRELOAD"),
    )
    if PRODUCTION and not env_bool(chosen, True)
]
# axes.W006 asks to lock out by address too: RefSet locks per account on purpose
# (see AXES_LOCKOUT_PARAMETERS).
SILENCED_SYSTEM_CHECKS.append("axes.W006")
# DJANGO_SECURE_PROXY_SSL_HEADER: 1 when RefSet runs behind a TLS-terminating proxy
# that sets X-Forwarded-Proto (and strips it from clients): requests it marks
# "https" count as secure. Never set it without such a proxy.
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy on every response (annotation_server/csp.py): scripts and
# styles from this origin only (inline style attributes allowed: progress bars and
# DRF's pages use them; inline scripts only as listed in CSP_INLINE_SCRIPTS, by
# hash), images also from data: and blob:
# URLs, no plugins, no framing, forms post only here.
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:", "blob:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "worker-src": ["'self'", "blob:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Static scripts a page may put inline (template tag {% inline_script %}), each
# allowed by the sha256 of its text: the workstation's early pixel stream, which
# must run before the style sheets and without a request of its own.
CSP_INLINE_SCRIPTS = ["refset/viewer/prefetch.js"]
