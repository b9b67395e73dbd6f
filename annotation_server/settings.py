"""RefSet settings: one module, driven by environment variables.

Each variable is documented where it is read. Nothing here has a second
settings file: tests, the demo and production differ only by environment.
"""

from __future__ import annotations

from pathlib import Path

from django.utils.translation import gettext_lazy as _

from annotation_server.env import env_bool, env_database, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# REFSET_VAR_DIR: where the embedded database, stored files and logs live.
VAR_DIR = Path(env_str("REFSET_VAR_DIR", str(BASE_DIR / "var")))

# DJANGO_SECRET_KEY: signing key. The default is for the demo only; production
# (DJANGO_DEBUG=0) refuses to start without one.
DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
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
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
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
    "annotation_server.accounts",
    "annotation_server.audit",
    "annotation_server.jobs",
    "annotation_server.imaging",
    "annotation_server.projects",
    "annotation_server.reading",
    "annotation_server.adjudication",
    "annotation_server.qualification",
    "annotation_server.datasets",
    "annotation_server.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "annotation_server.errors.DomainErrorMiddleware",
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
            ],
        },
    },
]

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
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
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "frontend_templates" / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True

# Stored files (DICOM, exports) go through Django's storage API.
# REFSET_STORAGE_BACKEND: a storage class path; an S3-compatible backend from
# django-storages works by configuration (its own AWS_* variables).
MEDIA_ROOT = Path(env_str("REFSET_MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {
        "BACKEND": env_str("REFSET_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# REFSET_KEY_ENCRYPTION_KEY: Fernet key that encrypts the de-identification key
# store (project secrets, original identifiers). Required when DJANGO_DEBUG=0.
REFSET_KEY_ENCRYPTION_KEY = env_str("REFSET_KEY_ENCRYPTION_KEY", "")

# Ingest limits. REFSET_MAX_FILE_MB: largest single file accepted;
# REFSET_ZIP_MAX_TOTAL_MB / REFSET_ZIP_MAX_RATIO: zip-bomb guards (total
# uncompressed size of one archive, and uncompressed/compressed ratio per member).
REFSET_MAX_FILE_MB = env_int("REFSET_MAX_FILE_MB", 512)
REFSET_ZIP_MAX_TOTAL_MB = env_int("REFSET_ZIP_MAX_TOTAL_MB", 20_000)
REFSET_ZIP_MAX_RATIO = env_int("REFSET_ZIP_MAX_RATIO", 200)

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
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("REFSET_UPLOAD_MAX_FILES", 5000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
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
    },
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
