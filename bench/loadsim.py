"""Simulated readers for the load bench (bench/load.py) and its bounded run in
`make test` (tests/load/test_load_bounded.py). asyncio + aiohttp, no Django.

Each reader is one browser: one aiohttp session (its own cookie jar, up to four
connections, so two "tabs" can have requests in flight at once). It signs in
through the real login form (CSRF token from the page, session cookie), then
works through its worklist as the workstation does:

    GET  /worklist/next/                     -> 302 to the next open read
    GET  /read/{id}/                         the workstation page (bootstrap JSON)
    POST /api/v1/reading-tasks/{id}/start/   an assigned read
    GET  /api/v1/series/{id}/pixels/         the whole series' pixel stream
    POST /api/v1/findings/                   new findings, named by a client uid
    PUT  /api/v1/findings/{id}/              autosaves, each carrying its version
    POST /api/v1/reading-tasks/{id}/heartbeat/
    PUT  /api/v1/reading-tasks/{id}/case-label/
    DELETE /api/v1/findings/{id}/?version=   a finding taken back
    GET  /api/v1/reading-tasks/{id}/         the read's version, then
    POST /api/v1/reading-tasks/{id}/submit/

and provokes what two tabs of one read do (autosave.js): both save the same
finding (or the case labels) on the same version at once (one must get 409 and
the database must keep the other's content; half the losers reload and send
their change again on the new version), both send the create of one finding
uid at once (a tab restoring the other's unsaved buffer), and a stale tab saves
after the read was submitted (409 read_locked).

Every request is recorded (endpoint as a route, status, latency), every write
with its content and the version it was based on and given, every race with its
outcome. `report()` prints the table; bench/loadseed.py checks the writes
against the database.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

PIXELS_MEDIA_TYPE = "application/vnd.refset.pixels"
API = "/api/v1/"


# -- what is recorded ---------------------------------------------------------------


@dataclass
class Sample:
    endpoint: str
    status: int | None  # None: no answer (timeout, connection error)
    seconds: float
    error: str = ""
    phase: str = "read"  # "sign-in": before the timed window


@dataclass
class Write:
    """One write request and what came of it."""

    key: str  # "finding:<uid>", "label:<task id>" or "task:<task id>"
    kind: str  # create | update | delete | label | submit
    tab: str
    task_id: int
    content: Any  # what was sent (finding: type/geometry/attributes; label: values)
    base: int | None  # the version it was based on
    status: int | None = None
    version: int | None = None  # the version the server answered with
    code: str = ""  # the error code of a refusal
    resend: bool = False  # sent again after a 409 and a reload
    seq: int = 0  # order of sending, over the whole run

    @property
    def acked(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        """A definite no: 4xx means nothing changed. 5xx or no answer: unknown."""
        return self.status is not None and 400 <= self.status < 500


@dataclass
class Race:
    key: str
    kind: str  # finding | label | create
    statuses: tuple
    note: str = ""


@dataclass
class Recorder:
    samples: list[Sample] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    races: list[Race] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    logins: int = 0
    cases_opened: int = 0
    cases_submitted: int = 0
    out_of_work: list[int] = field(default_factory=list)  # reads done by each who ran out
    phase: str = "sign-in"
    sign_in_seconds: float = 0.0
    started: float = 0.0  # the timed window
    finished: float = 0.0

    def add_write(self, write: Write) -> Write:
        write.seq = len(self.writes)
        self.writes.append(write)
        return write


@dataclass
class Options:
    findings_per_case: int = 2
    autosave_rounds: int = 3
    request_timeout: float = 60.0
    think_seconds: float = 0.0  # pause between a reader's steps
    slices: int = 16  # series length, for slice indices in geometries


class Stop(Exception):
    """The run's time is up: the reader stops before its next step."""


class Unexpected(Exception):
    """An answer the reader cannot go on from (recorded as a problem)."""


@dataclass
class Answer:
    status: int | None
    headers: Any
    body: bytes
    error: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def code(self) -> str:
        data = self.json()
        return str(data.get("code", "")) if isinstance(data, dict) else ""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def same(a: Any, b: Any) -> bool:
    return _canonical(a) == _canonical(b)


# -- one reader ---------------------------------------------------------------------


class Reader:
    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        recorder: Recorder,
        deadline: float,
        options: Options,
    ):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.rec = recorder
        self.deadline = deadline
        self.opts = options
        self.n = 0  # writes made: makes every content this reader sends unique
        self.case_no = 0
        self.http: aiohttp.ClientSession | None = None
        self.failed_tasks: set[int] = set()

    # transport ------------------------------------------------------------------

    def _csrf(self) -> str:
        for cookie in self.http.cookie_jar:
            if cookie.key == "csrftoken":
                return cookie.value
        return ""

    async def call(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        json_body: Any = None,
        form: dict | None = None,
        accept: str = "application/json",
    ) -> Answer:
        headers = {"Accept": accept}
        if method not in ("GET", "HEAD"):
            headers["X-CSRFToken"] = self._csrf()
        started = time.perf_counter()
        status, hdrs, body, error = None, {}, b"", ""
        try:
            async with self.http.request(
                method,
                self.base_url + path,
                json=json_body,
                data=form,
                headers=headers,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                status, hdrs = response.status, response.headers
        except TimeoutError:
            error = "timeout"
        except aiohttp.ClientError as exc:
            error = type(exc).__name__
        self.rec.samples.append(
            Sample(endpoint, status, time.perf_counter() - started, error, self.rec.phase)
        )
        return Answer(status, hdrs, body, error)

    async def step(self) -> None:
        """Between two steps: stop when the time is up; think if told to."""
        if time.monotonic() >= self.deadline:
            raise Stop
        if self.opts.think_seconds:
            await asyncio.sleep(self.opts.think_seconds)

    def expect(self, answer: Answer, what: str, *statuses: int) -> Answer:
        if answer.status not in statuses:
            detail = answer.error or answer.body[:200].decode("utf-8", "replace")
            raise Unexpected(f"{self.username}: {what} answered {answer.status}: {detail}")
        return answer

    # the session ----------------------------------------------------------------

    def open(self) -> None:
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=4),
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies for 127.0.0.1 (an address)
            timeout=aiohttp.ClientTimeout(total=self.opts.request_timeout),
        )

    async def sign_in(self) -> bool:
        try:
            await self.login()
            return True
        except Unexpected as exc:
            self.rec.problems.append(str(exc))
            return False

    async def work(self) -> None:
        """Read case after case until the time is up or the worklist is empty."""
        try:
            while True:
                await self.step()
                if not await self.read_next_case():
                    break
        except Stop:
            pass
        except Unexpected as exc:
            self.rec.problems.append(str(exc))

    async def login(self) -> None:
        page = self.expect(await self.call("GET", "/login/", "GET /login/"), "login page", 200)
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
        if not match:
            raise Unexpected(f"{self.username}: no CSRF token in the login form")
        answer = await self.call(
            "POST",
            "/login/",
            "POST /login/",
            form={
                "csrfmiddlewaretoken": match.group(1).decode(),
                "username": self.username,
                "password": self.password,
                "next": "",
            },
        )
        if answer.status != 302:
            raise Unexpected(
                f"{self.username}: sign-in refused ({answer.status}; a lockout or throttle?)"
            )
        self.rec.logins += 1

    async def read_next_case(self) -> bool:
        """Open the next read from the worklist and do it; False when none is left."""
        after = f"?after={min(self.failed_tasks)}" if self.failed_tasks else ""
        answer = self.expect(
            await self.call("GET", f"/worklist/next/{after}", "GET /worklist/next/"),
            "next case",
            302,
        )
        location = answer.headers.get("Location", "")
        match = re.search(r"/read/(\d+)/", location)
        if not match:
            if not location.startswith("/worklist/"):
                raise Unexpected(f"{self.username}: the next case redirected to {location}")
            self.rec.out_of_work.append(self.case_no)
            return False
        task_id = int(match.group(1))
        if task_id in self.failed_tasks:
            return False  # only the read that failed is left
        try:
            await self.read_case(task_id)
        except Unexpected as exc:
            self.rec.problems.append(str(exc))
            self.failed_tasks.add(task_id)
        return True

    # one read --------------------------------------------------------------------

    def content(self, slot: int, tab: str) -> dict:
        """A finding as the workstation sends it; each one this reader sends differs."""
        self.n += 1
        x = 40.0 + (self.n % 400) * 0.25
        return {
            "finding_type": "nodule",
            "geometry": {
                "kind": "ellipse",
                "shapes": [
                    {"slice_index": slot % self.opts.slices, "points": [[x, 30.0], [x + 6, 36.0]]}
                ],
                "centre_mm": [round(x * 0.7, 3), -20.0, -100.0 - slot],
            },
            "attributes": {
                "nodule_type": "solid" if tab == "A" else "part_solid",
                "long_axis_mm": 4.0 + (self.n % 9000) / 100,
                "malignancy": 2 if tab == "A" else 4,
            },
        }

    async def read_case(self, task_id: int) -> None:
        self.case_no += 1
        no = self.case_no
        page = self.expect(
            await self.call("GET", f"/read/{task_id}/", "GET /read/{id}/", accept="text/html"),
            "workstation page",
            200,
        )
        match = re.search(
            rb'<script id="ws-bootstrap" type="application/json">(.*?)</script>', page.body, re.S
        )
        if not match:
            raise Unexpected(f"{self.username}: no bootstrap data in /read/{task_id}/")
        boot = json.loads(match.group(1))
        self.rec.cases_opened += 1
        task = boot["task"]
        if boot["findings"]:
            raise Unexpected(f"{self.username}: read {task_id} opened with findings already")
        tasks = f"{API}reading-tasks/{task_id}/"
        if task["state"] == "assigned":
            await self.step()
            self.expect(
                await self.call("POST", f"{tasks}start/", "POST /reading-tasks/{id}/start/"),
                "start",
                200,
            )
        await self.step()
        series = self.expect(
            await self.call(
                "GET",
                f"{API}series/{boot['series']['id']}/pixels/",
                "GET /series/{id}/pixels/",
                accept=PIXELS_MEDIA_TYPE,
            ),
            "series pixels",
            200,
        )
        frames = int(series.headers.get("X-Refset-Frames", "0"))
        if frames < 1 or len(series.body) < frames * 64:
            raise Unexpected(f"{self.username}: series stream of {len(series.body)} bytes")

        known: dict[str, dict] = {}  # uid -> {"id", "version"} as tab A knows it
        for slot in range(self.opts.findings_per_case):
            await self.step()
            uid = str(uuid.uuid4())
            body = {"task": task_id, "uid": uid, **self.content(slot, "A")}
            if slot == 0 and no % 3 == 1:
                known[uid] = await self.create_twice(task_id, uid, body)
            else:
                known[uid] = await self.create(task_id, uid, body, "A")
        await self.step()
        self.expect(
            await self.call(
                "POST",
                f"{tasks}heartbeat/",
                "POST /reading-tasks/{id}/heartbeat/",
                json_body={"seconds": 5},
            ),
            "heartbeat",
            200,
        )
        for _ in range(self.opts.autosave_rounds):
            for slot, uid in enumerate(known):
                await self.step()
                await self.update(task_id, uid, known, self.content(slot, "A"), "A")
        # Two tabs save one finding on the same version at once.
        await self.step()
        race_uid = list(known)[no % len(known)]
        await self.race_finding(task_id, race_uid, known, resend=no % 2 == 0)
        # Case labels: once, and every other case two tabs at once.
        await self.step()
        label_version = await self.save_label(task_id, 0, "A", image_quality=3)
        if no % 2 == 1:
            await self.step()
            await self.race_label(task_id, label_version, resend=no % 4 == 1)
        # Every fourth case a finding is made and taken back.
        if no % 4 == 2:
            await self.step()
            uid = str(uuid.uuid4())
            made = await self.create(
                task_id, uid, {"task": task_id, "uid": uid, **self.content(7, "A")}, "A"
            )
            await self.step()
            await self.delete(task_id, uid, made)
        await self.step()
        current = self.expect(
            await self.call("GET", tasks, "GET /reading-tasks/{id}/"), "task", 200
        ).json()
        await self.step()
        submit = self.rec.add_write(
            Write(f"task:{task_id}", "submit", "A", task_id, None, current["version"])
        )
        answer = await self.call(
            "POST",
            f"{tasks}submit/",
            "POST /reading-tasks/{id}/submit/",
            json_body={"version": current["version"], "active_seconds": 30},
        )
        submit.status, submit.code = answer.status, answer.code
        self.expect(answer, "submit", 200)
        submit.version = answer.json()["version"]
        self.rec.cases_submitted += 1
        # A stale tab saves after the submit: refused, nothing changes.
        if no % 3 == 1:
            uid = next(iter(known))
            write = await self.put(task_id, uid, known[uid], self.content(0, "B"), "B")
            if write.acked:
                self.rec.problems.append(
                    f"{self.username}: a save to submitted read {task_id} was accepted"
                )
            elif write.status != 409 or write.code != "read_locked":
                raise Unexpected(
                    f"{self.username}: a save after the submit answered {write.status} "
                    f"{write.code} (want 409 read_locked)"
                )

    # writes ------------------------------------------------------------------------

    async def create(self, task_id: int, uid: str, body: dict, tab: str) -> dict:
        write = self.rec.add_write(
            Write(f"finding:{uid}", "create", tab, task_id, _finding(body), None)
        )
        answer = await self.call("POST", f"{API}findings/", "POST /findings/", json_body=body)
        write.status, write.code = answer.status, answer.code
        self.expect(answer, "create finding", 201, 200)
        data = answer.json()
        write.version = data["version"]
        return {"id": data["id"], "version": data["version"]}

    async def create_twice(self, task_id: int, uid: str, body: dict) -> dict:
        """Two tabs send the create of one uid at once (one restored the other's
        buffer): one finding, both told about it, no error."""
        a, b = await asyncio.gather(
            self._send_create(task_id, uid, body, "A"), self._send_create(task_id, uid, body, "B")
        )
        statuses = (a.status, b.status)
        self.rec.races.append(Race(f"finding:{uid}", "create", statuses))
        if sorted(s or 0 for s in statuses) != [200, 201]:
            raise Unexpected(
                f"{self.username}: two creates of finding {uid} answered {statuses} "
                f"(want one 201 and one 200): {(a.body or b.body)[:200]!r}"
            )
        data = json.loads(a.body)
        return {"id": data["id"], "version": data["version"]}

    async def _send_create(self, task_id: int, uid: str, body: dict, tab: str) -> Answer:
        write = self.rec.add_write(
            Write(f"finding:{uid}", "create", tab, task_id, _finding(body), None)
        )
        answer = await self.call("POST", f"{API}findings/", "POST /findings/", json_body=body)
        write.status, write.code = answer.status, answer.code
        if write.acked:
            write.version = answer.json()["version"]
        return answer

    async def put(
        self, task_id: int, uid: str, known: dict, content: dict, tab: str, resend=False
    ) -> Write:
        write = self.rec.add_write(
            Write(
                f"finding:{uid}", "update", tab, task_id, content, known["version"], resend=resend
            )
        )
        answer = await self.call(
            "PUT",
            f"{API}findings/{known['id']}/",
            "PUT /findings/{id}/",
            json_body={"task": task_id, "uid": uid, **content, "version": known["version"]},
        )
        write.status, write.code = answer.status, answer.code
        if write.acked:
            write.version = answer.json()["version"]
        return write

    async def update(self, task_id: int, uid: str, known: dict, content: dict, tab: str) -> None:
        write = await self.put(task_id, uid, known[uid], content, tab)
        if not write.acked:
            raise Unexpected(
                f"{self.username}: autosave of {uid} on version {write.base} answered "
                f"{write.status} {write.code}"
            )
        known[uid] = {"id": known[uid]["id"], "version": write.version}

    async def fetch_finding(self, finding_id: int) -> dict:
        return self.expect(
            await self.call("GET", f"{API}findings/{finding_id}/", "GET /findings/{id}/"),
            "reload finding",
            200,
        ).json()

    async def race_finding(self, task_id: int, uid: str, known: dict, *, resend: bool) -> None:
        # Tab B opened the read too: it loads the finding as it is now.
        loaded = await self.fetch_finding(known[uid]["id"])
        if loaded["version"] != known[uid]["version"]:
            raise Unexpected(f"{self.username}: finding {uid} is at {loaded['version']}")
        base = dict(known[uid])
        mine, theirs = self.content(1, "A"), self.content(1, "B")
        a, b = await asyncio.gather(
            self.put(task_id, uid, base, mine, "A"), self.put(task_id, uid, base, theirs, "B")
        )
        self.rec.races.append(Race(f"finding:{uid}", "finding", (a.status, b.status)))
        if a.acked and b.acked:
            self.rec.problems.append(
                f"{self.username}: both tabs' saves of finding {uid} on version "
                f"{base['version']} were accepted (versions {a.version}, {b.version})"
            )
            return
        if not (a.acked or b.acked) or not (a.refused or b.refused):
            raise Unexpected(
                f"{self.username}: race on {uid} answered {a.status}/{b.status} {a.code}{b.code}"
            )
        winner, loser = (a, b) if a.acked else (b, a)
        if loser.status != 409 or loser.code != "version_conflict":
            raise Unexpected(
                f"{self.username}: the losing save answered {loser.status} {loser.code}"
            )
        # The loser reloads: the database must hold the winner's content.
        now = await self.fetch_finding(base["id"])
        if now["version"] != winner.version or not same(_finding(now), winner.content):
            self.rec.problems.append(
                f"{self.username}: after a 409 on {uid}, the finding is version "
                f"{now['version']} with content other than the winning save's"
            )
        known[uid] = {"id": base["id"], "version": now["version"]}
        if resend:  # the reader re-applies their change on the newest version
            again = await self.put(task_id, uid, known[uid], loser.content, loser.tab, resend=True)
            if not again.acked:
                raise Unexpected(f"{self.username}: the re-sent save answered {again.status}")
            known[uid] = {"id": base["id"], "version": again.version}

    async def save_label(
        self, task_id: int, version: int, tab: str, *, image_quality: int, resend=False
    ) -> int:
        write = await self._put_label(task_id, version, tab, image_quality, resend)
        if not write.acked:
            raise Unexpected(f"{self.username}: case labels answered {write.status}")
        return write.version

    async def _put_label(
        self, task_id: int, version: int, tab: str, image_quality: int, resend=False
    ) -> Write:
        self.n += 1
        values = {
            "nodules_present": True,
            "image_quality": image_quality,
            "comment": f"tab {tab}, save {self.n}",
        }
        write = self.rec.add_write(
            Write(f"label:{task_id}", "label", tab, task_id, values, version, resend=resend)
        )
        answer = await self.call(
            "PUT",
            f"{API}reading-tasks/{task_id}/case-label/",
            "PUT /reading-tasks/{id}/case-label/",
            json_body={"values": values, "version": version},
        )
        write.status, write.code = answer.status, answer.code
        if write.acked:
            write.version = answer.json()["version"]
        return write

    async def race_label(self, task_id: int, version: int, *, resend: bool) -> None:
        a, b = await asyncio.gather(
            self._put_label(task_id, version, "A", 2), self._put_label(task_id, version, "B", 1)
        )
        self.rec.races.append(Race(f"label:{task_id}", "label", (a.status, b.status)))
        if a.acked and b.acked:
            self.rec.problems.append(
                f"{self.username}: both tabs' case labels of read {task_id} on version "
                f"{version} were accepted"
            )
            return
        if not (a.acked or b.acked) or not (a.refused or b.refused):
            raise Unexpected(f"{self.username}: label race answered {a.status}/{b.status}")
        winner, loser = (a, b) if a.acked else (b, a)
        if loser.status != 409 or loser.code != "version_conflict":
            raise Unexpected(
                f"{self.username}: the losing case-label save answered {loser.status} {loser.code}"
            )
        now = self.expect(
            await self.call(
                "GET",
                f"{API}reading-tasks/{task_id}/case-label/",
                "GET /reading-tasks/{id}/case-label/",
            ),
            "reload case labels",
            200,
        ).json()
        if now["version"] != winner.version or not same(now["values"], winner.content):
            self.rec.problems.append(
                f"{self.username}: after a 409 on the case labels of read {task_id}, they are "
                f"version {now['version']} {now['values']}, not the winning save's"
            )
        if resend:
            quality = loser.content["image_quality"]
            await self.save_label(
                task_id, now["version"], loser.tab, image_quality=quality, resend=True
            )

    async def delete(self, task_id: int, uid: str, known: dict) -> None:
        write = self.rec.add_write(
            Write(f"finding:{uid}", "delete", "A", task_id, None, known["version"])
        )
        answer = await self.call(
            "DELETE",
            f"{API}findings/{known['id']}/?version={known['version']}",
            "DELETE /findings/{id}/",
        )
        write.status, write.code = answer.status, answer.code
        self.expect(answer, "delete finding", 204)


def _finding(data: dict) -> dict:
    return {k: data[k] for k in ("finding_type", "geometry", "attributes")}


# -- the run ------------------------------------------------------------------------


async def run_readers(
    base_url: str,
    accounts: list[tuple[str, str]],
    duration: float,
    options: Options | None = None,
) -> Recorder:
    """One simulated reader per (username, password): all sign in at once through
    the login form (recorded apart: a sign-in hashes the password at full cost,
    and 50 of them would otherwise fill the window), then read for `duration`
    seconds; a reader stops before its next step once the time is up (requests
    in flight finish)."""
    options = options or Options()
    recorder = Recorder()
    readers = [Reader(base_url, u, p, recorder, 0.0, options) for u, p in accounts]
    for reader in readers:
        reader.open()
    try:
        started = time.monotonic()
        signed_in = await asyncio.gather(*(r.sign_in() for r in readers))
        recorder.sign_in_seconds = time.monotonic() - started
        recorder.phase = "read"
        recorder.started = time.monotonic()
        for reader in readers:
            reader.deadline = recorder.started + duration
        await asyncio.gather(*(r.work() for r, ok in zip(readers, signed_in, strict=True) if ok))
        recorder.finished = time.monotonic()
    finally:
        for reader in readers:
            await reader.http.close()
    return recorder


# -- the table ----------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def report(recorder: Recorder) -> str:
    """Per endpoint: count, throughput, p50/p95/p99 latency, 409s, other 4xx, errors
    (5xx, timeouts, connection errors); totals. The timed reading window first,
    then the sign-ins before it."""
    reading = [s for s in recorder.samples if s.phase == "read"]
    signing = [s for s in recorder.samples if s.phase == "sign-in"]
    width = max([len(s.endpoint) for s in recorder.samples] + [len("all, sign-in")])
    head = (
        f"{'endpoint':<{width}} {'count':>6} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'409':>5} {'4xx':>4} {'5xx':>4} {'t/o':>4}"
    )

    def row(name: str, samples: list[Sample], wall: float) -> str:
        times = sorted(s.seconds * 1000 for s in samples)
        conflicts = sum(1 for s in samples if s.status == 409)
        other = sum(1 for s in samples if s.status and 400 <= s.status < 500 and s.status != 409)
        server = sum(1 for s in samples if s.status and s.status >= 500)
        lost = sum(1 for s in samples if s.status is None)
        return (
            f"{name:<{width}} {len(samples):>6} {len(samples) / max(wall, 1e-9):>7.1f} "
            f"{percentile(times, 50):>8.1f} {percentile(times, 95):>8.1f} "
            f"{percentile(times, 99):>8.1f} {conflicts:>5} {other:>4} {server:>4} {lost:>4}"
        )

    def table(samples: list[Sample], wall: float, total: str) -> list[str]:
        by_endpoint: dict[str, list[Sample]] = {}
        for sample in samples:
            by_endpoint.setdefault(sample.endpoint, []).append(sample)
        names = sorted(by_endpoint, key=lambda e: (e.split(" ", 1)[1], e))
        rows = [row(name, by_endpoint[name], wall) for name in names]
        return [*rows, "-" * len(head), row(total, samples, wall)]

    wall = recorder.finished - recorder.started
    lines = [head, "-" * len(head), *table(reading, wall, "all")]
    lines.append(
        f"reading window {wall:.1f} s: {recorder.cases_opened} reads opened, "
        f"{recorder.cases_submitted} submitted; races: "
        + ", ".join(
            f"{kind} {sum(1 for r in recorder.races if r.kind == kind)}"
            for kind in ("finding", "label", "create")
        )
        + (
            f"; {len(recorder.out_of_work)} readers ran out of reads (after "
            f"{', '.join(map(str, sorted(recorder.out_of_work)))} reads)"
            if recorder.out_of_work
            else ""
        )
    )
    lines += ["", *table(signing, recorder.sign_in_seconds, "all, sign-in")]
    lines.append(
        f"sign-in before the window: {recorder.logins} readers at once, "
        f"{recorder.sign_in_seconds:.1f} s (full-cost password hashing)"
    )
    return "\n".join(lines)
