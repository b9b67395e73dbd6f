"""python manage.py dicom_listener [--ae-title AET] [--port N] [--bind ADDRESS]

RefSet's DICOM listener (Verification and Storage SCP): modalities and PACSs send
to it with C-STORE, and a PACS answering RefSet's C-MOVE delivers to it. Who may
send, into which project, is configured per project by its managers (DICOM
senders on the project's PACS page); everyone else is refused at association.
Defaults from REFSET_DICOM_AE_TITLE, REFSET_DICOM_PORT, REFSET_DICOM_BIND (see
annotation_server/imaging/dimse/listener.py). Runs until interrupted (Ctrl-C or
SIGTERM), then waits for the associations in progress and their imports.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time

from django.core.management.base import BaseCommand

from annotation_server.imaging.dimse.listener import Listener, ListenerConfig


class Command(BaseCommand):
    help = "Run RefSet's DICOM listener (C-ECHO, C-STORE into the routed project)."

    def add_arguments(self, parser):
        parser.add_argument("--ae-title", help="this listener's AE title (REFSET_DICOM_AE_TITLE)")
        parser.add_argument("--port", type=int, help="TCP port (REFSET_DICOM_PORT)")
        parser.add_argument("--bind", help="address to listen on (REFSET_DICOM_BIND)")

    def handle(self, *args, ae_title=None, port=None, bind=None, **options):
        config = ListenerConfig.from_settings()
        changes = {"ae_title": ae_title, "port": port, "bind": bind}
        config = dataclasses.replace(config, **{k: v for k, v in changes.items() if v})
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        logging.getLogger("annotation_server.imaging.dimse").setLevel(logging.INFO)
        self.stdout.write(
            f"DICOM listener {config.ae_title} on {config.bind}:{config.port} (Ctrl-C to stop)"
        )
        listener = Listener(config)
        listener.start()

        def on_term(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            # No new associations; those in progress end and are imported first.
            self.stdout.write("stopping: finishing the imports in progress")
            listener.stop(timeout=600)
            self.stdout.write("stopped")
