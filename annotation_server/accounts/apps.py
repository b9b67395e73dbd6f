from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "annotation_server.accounts"
    label = "accounts"
