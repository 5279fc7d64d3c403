"""One settings object for the whole system, read from `CARDSVC_*` environment variables."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOWNSHIPS: tuple[str, ...] = ("金城鎮", "金湖鎮", "金沙鎮", "金寧鄉", "烈嶼鄉", "烏坵鄉")
BUSINESS_TZ = "Asia/Taipei"


FareClass = Literal["full", "student", "half", "free"]
KINMEN_FARE_CLASSES: dict[str, FareClass] = {
    "none": "full", "senior": "free", "disability": "free", "companion": "free",
    "student": "student", "staff": "full"}


class SubsidyProgramme(BaseModel):
    """A funding programme of concession rides (e.g. the social affairs department's)."""

    name: str = Field(min_length=1, max_length=100)
    concessions: list[Literal["senior", "disability", "companion", "student", "staff"]]
    budget_account: str = Field(min_length=1, max_length=40)


class Settings(BaseSettings):
    """Every knob of a deployment. Embedded defaults need no configuration at all."""

    model_config = SettingsConfigDict(env_prefix="CARDSVC_", env_file=None, extra="ignore")

    # Where data and keys live. The embedded default is a SQLite file and a secrets file in
    # the working directory; production names PostgreSQL and a secrets file mounted read-only.
    database_url: str = "sqlite:///cardsvc.db"
    secrets_file: Path = Path("cardsvc-secrets.json")
    generate_secrets: bool = Field(
        default=True,
        description="Create the secrets file on first start when it is missing. Turn off in "
        "production so a missing secrets mount is an error, not a fresh set of keys.",
    )
    # Where the daily signed audit checkpoints are written (cardsvc/audit/checkpoints.py),
    # beside the embedded database by default; the ethics office copies them off the host.
    audit_checkpoint_dir: Path = Path("audit-checkpoints")

    host: str = "127.0.0.1"
    port: int = 8000
    # Reverse proxies whose X-Forwarded-For is believed (comma-separated addresses, or "*"):
    # behind the county's proxy, name it, or every client looks like the proxy to the login
    # throttle and the audit trail.
    forwarded_allow_ips: str = "127.0.0.1"
    # Requests are refused before anything reads them whole (cardsvc/app/guard.py): the request
    # line and headers, any body, and the body of an upload (a CSV bill file) from staff.
    max_header_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    max_body_bytes: int = Field(default=1_048_576, ge=4096, le=64 * 1_048_576)
    max_upload_bytes: int = Field(default=32 * 1_048_576, ge=4096, le=1024 * 1_048_576)

    # Staff sessions and login throttling (cardsvc/staff/throttle.py). Failures count per
    # account *and source address*, so a stranger elsewhere cannot lock a clerk out of the
    # counter; a source trying many accounts is slowed down too.
    token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_source_max_failures: int = Field(default=20, ge=1, le=100_000)
    login_account_max_failures: int = Field(default=50, ge=1, le=1_000_000)
    login_known_days: int = Field(default=90, ge=1, le=3650)
    login_lock_seconds: int = Field(default=30, ge=1, le=86_400)
    login_lock_max_seconds: int = Field(default=3600, ge=1, le=86_400)
    login_failure_window_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400)

    # The ethics office's access review (cardsvc/audit/review.py), Asia/Taipei. A read of
    # personal data before the office opens, from its closing time on, or on a day that is
    # not a working weekday (ISO numbers: 1 is Monday, 7 Sunday) is flagged; a start later
    # than the end means hours across midnight, equal ones a day without closing time. Also
    # flagged: one person reading more distinct residents within one clock hour than this.
    review_office_start: dt.time = dt.time(8, 0)
    review_office_end: dt.time = dt.time(17, 30)
    review_office_weekdays: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5],
                                              min_length=1, max_length=7)
    review_residents_per_hour: int = Field(default=30, ge=1, le=100_000)

    @field_validator("review_office_weekdays")
    @classmethod
    def _iso_weekdays(cls, v: list[int]) -> list[int]:
        if any(day < 1 or day > 7 for day in v):
            raise ValueError("weekdays are ISO numbers, 1 (Monday) to 7 (Sunday)")
        return sorted(set(v))

    # Purse rules. National e-ticket rules cap a stored-value purse at NT$10,000.
    purse_max_balance: int = Field(default=10_000, ge=1)
    topup_max_amount: int = Field(default=10_000, ge=1)
    replacement_fee: int = Field(default=100, ge=0)
    # Largest single purchase at a POS terminal (terminals and the backend both check it).
    pos_purchase_limit: int = Field(default=1_000, ge=1)
    # PostgreSQL: book plainly fine card-present purchases in one database call from the
    # event loop (merchants/pos/fastpath.py); everything else takes the general path.
    pos_fast_path: bool = True
    pos_fast_pool_size: int = Field(default=8, ge=1, le=100)
    # Database calls of that path at once per process; purchases arriving meanwhile go
    # together in the next call (one commit for several). One measured faster than two.
    pos_fast_batches: int = Field(default=1, ge=1, le=100)
    # How long a mobile card's QR payment token stays valid.
    qr_token_ttl_seconds: int = Field(default=60, ge=5, le=600)
    # How long the answer to a money-moving request is kept for its retries (then purged;
    # the money movement itself is kept for good).
    idempotency_retention_days: int = Field(default=90, ge=1, le=3650)
    # Residents with no live card, no open balance and no activity for this many years have
    # their personal data erased (cardsvc/holders/retention.py, `cardsvc retention run`).
    # The scheduled run is off unless turned on here: erasure is a decision, not a default.
    retention_years: int = Field(default=5, ge=1, le=100)
    retention_scheduled: bool = False

    # County events. Points awarded in a year expire at the end of the year this many years
    # later (1: the end of the following year), unless redeemed first.
    points_expire_after_years: int = Field(default=1, ge=0, le=10)
    # How far a check-in's tap may lie from the phone token's time (a station's clock, a
    # phone's clock). An offline station's taps are taken until the list freezes.
    checkin_token_ttl_seconds: int = Field(default=120, ge=10, le=3600)

    # Library webhooks: how long a library's server may take to answer, how many failures in
    # a row park its feed (an admin resumes it), and the first wait between tries (doubling,
    # up to the cap).
    library_webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    library_webhook_max_failures: int = Field(default=8, ge=1, le=100)
    library_webhook_backoff_seconds: float = Field(default=5.0, ge=0, le=3600)
    library_webhook_backoff_max_seconds: float = Field(default=900.0, ge=0, le=86_400)

    # How residents' notices leave the outbox: `none` keeps them queued, `log` writes them to
    # the service log (cardsvc.app.senders).
    notify_sender: Literal["none", "log"] = "none"
    # The carrier type code the MOF assigned to the county's card (a setting, not code).
    einvoice_carrier_type: str = Field(default="2G0001", min_length=1, max_length=8)

    # Eligibility thresholds.
    senior_min_age: int = Field(default=65, ge=0)
    general_min_age: int = Field(default=7, ge=0)
    card_validity_years: int = Field(default=10, ge=1)
    senior_card_validity_years: int = Field(default=10, ge=1)

    # Transit. The fare class each concession rides at (classes: full, student, half, free):
    # in Kinmen seniors, 愛心 holders and their companion ride county buses free, students at
    # the student fare; elsewhere seniors and disability pay the legal half fare. The staff
    # card's fare is a setting too (default: the full fare).
    concession_fare_classes: dict[str, FareClass] = Field(default_factory=lambda: dict(
        KINMEN_FARE_CLASSES))
    # Who pays the difference between full fare and fare charged, by programme: its name,
    # the concessions it funds and its budget account.
    subsidy_programmes: dict[str, SubsidyProgramme] = Field(default_factory=lambda: {
        "social_affairs": SubsidyProgramme(
            name="社會處 敬老愛心搭乘補助", concessions=["senior", "disability", "companion"],
            budget_account="SA-TRANSIT"),
        "education": SubsidyProgramme(
            name="教育處 學生乘車補助", concessions=["student"], budget_account="ED-TRANSIT"),
    })
    # Misuse signals in clearing's exceptions: one card riding again within this many
    # seconds on another vehicle; a companion card riding without a 愛心 card ride on the same
    # vehicle within this many seconds.
    @field_validator("subsidy_programmes")
    @classmethod
    def _one_programme_per_concession(cls, v: dict[str, SubsidyProgramme]
                                      ) -> dict[str, SubsidyProgramme]:
        seen: dict[str, str] = {}
        for code, programme in v.items():
            for concession in programme.concessions:
                if concession in seen:
                    raise ValueError(f"concession {concession!r} is funded by both "
                                     f"{seen[concession]!r} and {code!r}")
                seen[concession] = code
        return v

    ride_min_interval_seconds: int = Field(default=300, ge=0, le=86_400)
    companion_tolerance_seconds: int = Field(default=120, ge=0, le=3_600)

    # Counter used when a request does not name one.
    default_counter: str = "KM-HQ"

    # The counter's card reader: "sim" (virtual cards kept as JSON files in sim_cards_dir),
    # "pcsc" (the first PC/SC reader), "pcsc:<part of the reader name>", or "none".
    reader: str = "sim"
    sim_cards_dir: Path = Path("sim-cards")
    reader_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    # Where card sessions take their lock on a PC/SC reader (one session per reader, across
    # processes). None: a directory of this account's under the system's temporary one;
    # services that share a reader must share this directory.
    reader_lock_dir: Path | None = None

    # Daily clearing. A business day's window takes the records received before its cut-off
    # (Asia/Taipei); beat starts the run `clearing_start_delay_minutes` after it.
    clearing_cutoff: dt.time = dt.time(23, 0)
    clearing_start_delay_minutes: int = Field(default=15, ge=0, le=600)
    # A run whose partitions are unfinished this long after dispatch is dispatched again by
    # the sweeper (its tasks are idempotent; a lost chord callback is the usual cause).
    clearing_stale_seconds: int = Field(default=600, ge=0)
    # Celery. No broker: tasks run in-process (the embedded default). Production names Redis,
    # e.g. redis://127.0.0.1:6379/0; results (for the chord) go to the same Redis by default.
    broker_url: str | None = None
    result_backend: str | None = None
    celery_queue: str = "cardsvc"
    # The county's own account that pays merchants and billers (the payout file's debtor).
    payout_debtor_name: str = "金門縣政府"
    payout_debtor_account: str = Field(default="000000000000", pattern=r"^[0-9A-Za-z]{1,34}$")
    payout_debtor_bank: str = Field(default="000", pattern=r"^[0-9A-Za-z]{1,35}$")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
