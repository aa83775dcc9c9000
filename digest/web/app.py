"""The Flask app factory: sign-up, confirm, preferences, unsubscribe, feedback."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from flask import (
    Flask,
    Response,
    abort,
    make_response,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from digest import render, taxonomy, tokens
from digest.addresses import normalize_email
from digest.config import Config, load_config
from digest.errors import DigestError, StoreError, TokenError, UsageError
from digest.models import PAPER_KEY_MAX, Subscriber
from digest.sources_config import effective_sources, reads_upvotes
from digest.store import Store, open_store
from digest.web import forms, signup

MAX_CONTENT_LENGTH = 1024 * 1024  # the whole request, BibTeX upload included
# Longer than any token we sign (refused before any crypto): a feedback link carries its
# paper's key, up to PAPER_KEY_MAX characters of up to 4 bytes each, in base64. 512 (a
# key of ~350 bytes) refused the thumbs of a paper whose key held non-Latin text.
MAX_TOKEN = 4 * -(-4 * PAPER_KEY_MAX // 3) + 128
# A field of the sign-up form that people never see (styles move it off screen) and
# scripts that fill every field do: a sign-up with it filled in is answered as any
# other and mails nobody.
HONEYPOT = "homepage"
# What may follow a link's token but never ends one (tokens end in URL-safe base64).
TRAILING_JUNK = re.compile(r"[^A-Za-z0-9_-]+\Z")

PROFILE_FIELDS = (
    "interests", "keywords", "exclude", "authors", "seeds",
    "send_hour", "timezone", "cadence", "weekday", "max_papers", "empty_digest", "popularity",
)

# Every page is self-contained: styles and the one script come from /static, nothing
# inline, no third-party origin, and no page may be framed.
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # Tokens live in URLs: never leak them to another site through Referer.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Pages reached through signed links must never end up in a search index.
    "X-Robots-Tag": "noindex, nofollow",
}

ERROR_TEXT = {
    400: "The request could not be understood.",
    403: "This request is not allowed.",
    404: "There is nothing here.",
    405: "This address does not accept that kind of request.",
    413: "That is too much data: please send a smaller file or shorter text.",
    500: "Something went wrong on our side. Please try again later.",
    503: "The service is busy. Please try again in a few minutes.",
}

# What a subscriber's status means, as the preferences page says it.
STATUS_TEXT = {
    "active": "on",
    "paused": "paused",
    "unsubscribed": "unsubscribed",
    "pending": "waiting for you to confirm (see the email we sent)",
}

log = logging.getLogger("digest.web")


def create_app(
    config: Config | None = None,
    *,
    now: Callable[[], datetime] | None = None,
    send: Callable[[EmailMessage], None] | None = None,
) -> Flask:
    """Build the web app on one Config (None: read the environment, for waitress --call)."""
    cfg = config or load_config()
    # The web server is an edge like the CLI: it reads the clock unless a test gives one.
    clock: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
    deliver = send or signup.smtp_send(cfg)
    db = open_store(cfg.database_url)

    web_dir = cfg.templates_dir / "web"
    app = Flask(
        __name__,
        template_folder=str(web_dir),
        static_folder=str(web_dir / "static"),
        static_url_path="/static",
    )
    # A link taken with the "/" after it (a copy, a client's autolinking) opens its page.
    app.url_map.strict_slashes = False
    # Autoescape every template, whatever its extension.
    app.jinja_options = {**app.jinja_options, "autoescape": True}
    app.config.update(
        # Derived, not reused: the session cookie must not share a key with signed links.
        SECRET_KEY=_session_key(cfg.secret_key),
        # A page opened before the key changed still sends its form.
        SECRET_KEY_FALLBACKS=[_session_key(key) for key in cfg.secret_key_fallbacks],
        MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
        MAX_FORM_MEMORY_SIZE=64 * 1024,
        MAX_FORM_PARTS=400,
        SESSION_COOKIE_NAME="digest_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=cfg.base_url.startswith("https://"),
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.extensions["digest"] = {"config": cfg, "store": db}
    if _base_path(cfg):
        # Every mailed link starts with DIGEST_BASE_URL's path; served at the root, each
        # was a 404, and behind a proxy that strips it, the pages' own links and forms
        # (styles, save, pause, export, delete) left it out.
        # Flask's documented way to add WSGI middleware; mypy sees a method replaced.
        app.wsgi_app = _mounted(  # type: ignore[method-assign,assignment]
            app.wsgi_app, _base_path(cfg))
    if cfg.trusted_proxies:
        # The client's address from X-Forwarded-For, as far as the proxies go.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=cfg.trusted_proxies)  # type: ignore[method-assign]
    list_name = cfg.list_name
    client_key = hmac.new(cfg.secret_key.encode(), b"digest.web.client", hashlib.sha256)

    # -- security ---------------------------------------------------------------------

    def csrf_token() -> str:
        token = session.get("csrf")
        if not isinstance(token, str) or not token:
            token = secrets.token_urlsafe(32)
            session["csrf"] = token
        return token

    def check_csrf() -> None:
        expected = session.get("csrf")
        given = request.form.get("csrf_token", "")
        # Compared as bytes: compare_digest refuses non-ASCII text with a TypeError (a 500).
        if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(),
                                                                    given.encode()):
            abort(400, "This form has expired. Go back, reload the page and try again.")

    def client() -> str:
        """Return a keyed hash of the client's address (an IPv6 address's /64)."""
        address = request.remote_addr or ""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            text = address
        else:
            if ip.version == 6 and ip.ipv4_mapped is not None:
                # An IPv4 client as a dual-stack socket or proxy writes it (::ffff:a.b.c.d):
                # the /64 of that is every IPv4 address there is.
                ip = ip.ipv4_mapped
            text = str(ipaddress.ip_network(f"{ip}/64", strict=False) if ip.version == 6
                       else ip)
        key = client_key.copy()
        key.update(text.encode())
        return key.hexdigest()[:32]

    def checked(token: str) -> str:
        if len(token) > MAX_TOKEN:
            raise TokenError("this link is not valid", "use the link exactly as in the email")
        # What a mail client, a chat or a copy took with the link from the text around
        # it (a full stop, a closing bracket or quote, a space): every token ends in a
        # base64 character, so nothing else at its end belongs to it.
        return TRAILING_JUNK.sub("", token)

    @app.context_processor
    def inject() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "list_name": list_name, "contact": cfg.contact,
                "zone_label": forms.zone_label}

    @app.after_request
    def headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.endpoint != "static":
            # Pages carry tokens and personal data: no shared or browser cache.
            response.headers["Cache-Control"] = "no-store"
        return response

    def page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
        return render_template(template, **context), status

    def message(title: str, text: str, status: int = 200, **context: Any) -> tuple[str, int]:
        return page("message.html", status, title=title, text=text, **context)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> tuple[str, int]:
        code = err.code or 500
        # A 400's description is ours (or werkzeug's plain text); never a traceback.
        text = err.description if code == 400 and err.description else ERROR_TEXT.get(
            code, ERROR_TEXT[400])
        return page("error.html", code, code=code, text=text, hint="")

    @app.errorhandler(TokenError)
    def token_error(err: TokenError) -> tuple[str, int]:
        return page("error.html", 400, code=400, text=err.message.capitalize() + ".",
                    hint=err.hint)

    @app.errorhandler(StoreError)
    def store_error(err: StoreError) -> tuple[str, int]:
        log.error("database error: %s", err)
        return page("error.html", 503, code=503, text=ERROR_TEXT[503], hint="")

    @app.errorhandler(Exception)
    def unexpected(err: Exception) -> tuple[str, int]:
        if isinstance(err, HTTPException):
            return http_error(err)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return page("error.html", 500, code=500, text=ERROR_TEXT[500], hint="")

    # -- sign-up and confirmation -----------------------------------------------------

    def form_page(values: dict[str, str], chosen: list[str], errors: dict[str, str],
                  status: int = 200, unsent: str = "") -> tuple[str, int]:
        return page(
            "subscribe.html", status, values=values, chosen=set(chosen), errors=errors,
            unsent=unsent,
            groups=forms.category_groups(), timezones=forms.timezones_with(cfg.timezone),
            weekdays=forms.WEEKDAYS, default_tz=cfg.timezone, default_hour=cfg.send_at[0],
            max_papers=forms.MAX_PAPERS, popularity_choices=forms.POPULARITY_CHOICES,
            upvotes=reads_upvotes(effective_sources(cfg, db.list_sources())),
        )

    @app.get("/")
    @app.get("/subscribe")
    def subscribe_form() -> tuple[str, int]:
        # The form takes at most forms.MAX_PAPERS (the ranking's cap too; the setting
        # stops there as well): a default above it was refused on a field never touched.
        return form_page({"max_papers": str(min(cfg.max_papers, forms.MAX_PAPERS))}, [], {})

    @app.post("/subscribe")
    def subscribe() -> tuple[str, int] | Response:
        check_csrf()
        values = {name: request.form.get(name, "") for name in ("email", *PROFILE_FIELDS)}
        if request.form.get(HONEYPOT, ""):
            log.info("sign-up with the hidden field filled in: nothing stored or mailed")
            return page("check_email.html", email=values["email"].strip())
        chosen = request.form.getlist("categories")
        errors: dict[str, str] = {}
        email = ""
        try:
            email = normalize_email(values["email"])
        except UsageError:
            errors["email"] = "enter one email address, like name@example.org"
        upload = request.files.get("bibtex")
        bibtex = upload.stream.read(forms.MAX_BIBTEX + 1) if upload and upload.filename else None
        try:
            profile, schedule = forms.parse_profile_form(values, chosen, bibtex=bibtex)
        except forms.FormErrors as err:
            errors = {**err.errors, **errors}
        if errors:
            values["seeds"] = forms.seeds_with_upload(values["seeds"], bibtex)
            return form_page(values, chosen, errors, 400)
        capped = db.claim_signup(client(), now=clock(), per_client=cfg.signup_per_client,
                                 per_hour=cfg.signup_per_hour)
        if capped != "ok":
            log.warning("sign-up refused: the %s cap of sign-ups an hour is reached",
                        "client's" if capped == "client" else "site's")
            text = ("There have been too many sign-ups from your network in the last hour."
                    if capped == "client" else
                    "There have been too many sign-ups in the last hour.")
            response = make_response(message(
                "Please try again later", f"{text} Nothing was stored and no email was "
                "sent. Please try again in an hour.", 429))
            response.headers["Retry-After"] = "3600"
            return response
        mailed = signup.request_subscription(cfg, db, email, profile, schedule, now=clock(),
                                             send=deliver)
        if mailed.outcome == "failed":
            # Our mail server refused or could not be reached (restarting, down): the
            # page said "a message is on its way" and the visitor waited for a mail that
            # never came, told to ask again in an hour. Nothing went out whatever the
            # address's state (a known address is mailed too), so saying so reveals no
            # subscriber; the form comes back filled in, to be sent again.
            values["seeds"] = forms.seeds_with_upload(values["seeds"], bibtex)
            return form_page(values, chosen, {}, 503, unsent=(
                f"We could not send the email to {email} just now: our mail server did "
                "not take it. Nothing was lost; please send the form again in a few "
                "minutes."))
        return page("check_email.html", email=email)

    @app.get("/confirm/<token>")
    def confirm_page(token: str) -> tuple[str, int]:
        link = signup.confirm_link(cfg, checked(token))
        if db.find_subscriber(link.email) is None:
            return gone()
        return page("confirm.html", email=link.email)

    @app.post("/confirm/<token>")
    def confirm(token: str) -> tuple[str, int]:
        check_csrf()
        done = signup.confirm(cfg, db, checked(token), now=clock())
        sub = done.subscriber
        if sub is None:
            return gone()
        preferences = _prefs_path(cfg, sub)
        if done.outcome == "confirmed":
            return page("confirmed.html", sub=sub, preferences=preferences,
                        schedule=_schedule(sub))
        if done.outcome == "active":
            return message("Already confirmed", "Your subscription is confirmed and on.",
                           link=preferences, link_text="See or change your preferences")
        # An older link than the subscriber's last pause or unsubscribe: it undoes neither.
        state = "paused" if sub.status == "paused" else "unsubscribed"
        return message(
            "This link is out of date",
            f"Your digest was {state} after this link was sent, so it changed nothing. "
            "To start it again, use your preferences page.",
            link=preferences, link_text="Open your preferences",
        )

    def gone(done: str = "") -> tuple[str, int]:
        # Ids are never reused: a link of a deleted subscriber reaches nobody, not even
        # the same address signed up again (a new subscriber, whose digests carry new
        # links). Saying "unsubscribed" there would tell someone whose digests keep
        # coming that they had stopped.
        text = (f"This subscription no longer exists{done}. If digests still reach you, "
                "the address was signed up again: use the links in the latest digest.")
        return message("Subscription gone", text, 404, link=url_for("subscribe_form"),
                       link_text="Go to the sign-up page")

    def gone_response() -> Response:
        """Return the "gone" page as a response that abort() can carry."""
        return make_response(gone(", so this link opens nothing"))

    # -- unsubscribe ------------------------------------------------------------------

    @app.get("/unsubscribe/<token>")
    def unsubscribe_page(token: str) -> tuple[str, int]:
        sub_id = signup.subscriber_id(cfg, "unsubscribe", checked(token))
        sub = db.get_subscriber(sub_id)
        if sub is None:
            return gone(": nothing is sent to it, and this link stops nothing else")
        # Opened again after unsubscribing: the way back is shown, as after the POST.
        return page("unsubscribe.html", sub=sub, done=sub.status == "unsubscribed",
                    preferences=_prefs_path(cfg, sub))

    @app.post("/unsubscribe/<token>")
    def unsubscribe(token: str) -> tuple[str, int]:
        # RFC 8058: the mailbox provider POSTs "List-Unsubscribe=One-Click" with no
        # cookie, so no CSRF token either; the signed token is the whole authority. The
        # value's spacing is not checked: a body ending in a line break is still a click.
        if request.form.get("List-Unsubscribe", "").strip() != "One-Click":
            check_csrf()
        sub_id = signup.subscriber_id(cfg, "unsubscribe", checked(token))
        signup.unsubscribe(db, sub_id, now=clock())
        sub = db.get_subscriber(sub_id)
        if sub is None:
            return gone(": nothing is sent to it, and this link stops nothing else")
        return page("unsubscribed.html", sub=sub, preferences=_prefs_path(cfg, sub))

    # -- feedback ---------------------------------------------------------------------

    @app.get("/feedback/<token>")
    def feedback_page(token: str) -> tuple[str, int]:
        vote = signup.feedback_vote(cfg, checked(token))
        if db.get_subscriber(vote.subscriber_id) is None:
            return gone()
        paper = db.get_papers([vote.paper_key]).get(vote.paper_key)
        return page("feedback.html", vote=vote, paper=paper, done=False)

    @app.post("/feedback/<token>")
    def feedback(token: str) -> tuple[str, int]:
        check_csrf()
        vote = signup.feedback_vote(cfg, checked(token))
        sub = db.get_subscriber(vote.subscriber_id)
        if sub is None:
            return gone()
        db.record_vote(vote.subscriber_id, vote.paper_key, vote.vote, now=clock())
        paper = db.get_papers([vote.paper_key]).get(vote.paper_key)
        # The vote counts whatever the status; "from your next digest on" only when one
        # will come.
        return page("feedback.html", vote=vote, paper=paper, done=True, sub_status=sub.status,
                    preferences=_prefs_path(cfg, sub))

    # -- preferences ------------------------------------------------------------------

    def prefs_subscriber(token: str) -> tuple[Subscriber, str]:
        token = checked(token)
        sub = db.get_subscriber(signup.subscriber_id(cfg, "preferences", token))
        if sub is None:
            abort(gone_response())
        return sub, token  # the page's forms and links carry the token as it is signed

    def prefs_page(sub: Subscriber, token: str, *, values: dict[str, str] | None = None,
                   chosen: list[str] | None = None, errors: dict[str, str] | None = None,
                   notice: str = "", status: int = 200) -> tuple[str, int]:
        return page(
            "preferences.html", status, sub=sub, token=token,
            schedule=_schedule(sub), blocked=_blocked(db, sub),
            values=values or forms.form_values(sub),
            chosen=set(sub.profile.categories if chosen is None else chosen),
            errors=errors or {}, notice=notice, view=signup.ranker_view(db, sub),
            groups=forms.category_groups(),
            timezones=forms.timezones_with(cfg.timezone, sub.timezone),
            weekdays=forms.WEEKDAYS, names={c.code: c.name for c in taxonomy.categories()},
            max_papers=forms.MAX_PAPERS, popularity_choices=forms.POPULARITY_CHOICES,
            upvotes=reads_upvotes(effective_sources(cfg, db.list_sources())),
        )

    @app.get("/preferences/<token>")
    def preferences_page(token: str) -> tuple[str, int]:
        sub, token = prefs_subscriber(token)
        return prefs_page(sub, token)

    @app.post("/preferences/<token>")
    def preferences(token: str) -> tuple[str, int]:
        check_csrf()
        sub, token = prefs_subscriber(token)
        values = {name: request.form.get(name, "") for name in PROFILE_FIELDS}
        chosen = request.form.getlist("categories")
        upload = request.files.get("bibtex")
        bibtex = upload.stream.read(forms.MAX_BIBTEX + 1) if upload and upload.filename else None
        try:
            profile, schedule = forms.parse_profile_form(values, chosen, bibtex=bibtex,
                                                         stored=sub.profile)
        except forms.FormErrors as err:
            values["email"] = sub.email
            values["seeds"] = forms.seeds_with_upload(values["seeds"], bibtex)
            return prefs_page(sub, token, values=values, chosen=chosen, errors=err.errors,
                              status=400)
        # Thumbs from the email stay: the form does not show them as editable fields.
        kept = replace(profile, liked=sub.profile.liked, disliked=sub.profile.disliked)
        db.update_subscriber(sub.id, now=clock(), profile=kept, **schedule.as_fields())
        fresh = db.get_subscriber(sub.id)
        assert fresh is not None
        return prefs_page(fresh, token, notice="Your preferences are saved.")

    @app.post("/preferences/<token>/pause")
    def pause(token: str) -> tuple[str, int]:
        check_csrf()
        sub, token = prefs_subscriber(token)
        if not db.change_status(sub.id, "paused", now=clock(), expect=("active",)):
            return _unchanged(sub, token)
        return _after_status(sub, token, "Your digest is paused. Resume it here any time.")

    @app.post("/preferences/<token>/resume")
    def resume(token: str) -> tuple[str, int]:
        check_csrf()
        sub, token = prefs_subscriber(token)
        # A preferences link only ever reached a confirmed address, so resuming after an
        # unsubscribe needs no new opt-in; a pending address must still confirm.
        if not db.change_status(sub.id, "active", now=clock(),
                                expect=("paused", "unsubscribed")):
            return _unchanged(sub, token)
        if db.is_suppressed(sub.email):
            # The pipeline sends nothing to a suppressed address, whatever its status.
            return _after_status(
                sub, token, "Your digest is switched on, but nothing will arrive while mail "
                "to this address is stopped (see above): sign up again with this address "
                "and confirm to lift that.")
        return _after_status(sub, token, "Your digest is on again.")

    @app.post("/preferences/<token>/forget")
    def forget(token: str) -> tuple[str, int]:
        check_csrf()
        sub, token = prefs_subscriber(token)
        # A thumb given by mistake, or from before the interests changed, kept steering
        # every digest: the page listed them and offered no way to drop one.
        every = request.form.get("all") == "yes"
        papers = None if every else request.form.getlist("paper")
        forgotten = db.forget_votes(sub.id, papers, now=clock())
        if not forgotten:
            return _after_status(sub, token, "Nothing changed: the ranker holds no such "
                                 "thumb (forgotten already?).")
        what = "your thumb on that paper" if forgotten == 1 and not every else (
            f"your thumbs on {forgotten} papers")
        return _after_status(sub, token, f"Forgotten: {what} no longer steers your digest, "
                             "from the next one on.")

    def _after_status(sub: Subscriber, token: str, notice: str) -> tuple[str, int]:
        fresh = db.get_subscriber(sub.id)
        assert fresh is not None
        return prefs_page(fresh, token, notice=notice)

    def _unchanged(sub: Subscriber, token: str) -> tuple[str, int]:
        # The page was out of date (unsubscribed from the mail client meanwhile, a second
        # tab) or the address never confirmed: say what the digest is, not what was asked.
        fresh = db.get_subscriber(sub.id)
        if fresh is None:
            abort(gone_response())
        state = STATUS_TEXT.get(fresh.status, fresh.status)
        return prefs_page(fresh, token, notice=f"Nothing changed: your digest is {state}.")

    @app.get("/preferences/<token>/export")
    def export(token: str) -> Response:
        sub, _ = prefs_subscriber(token)
        data = signup.export(db, sub.id) or {}
        return Response(
            json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
            mimetype="application/json",
            headers={"Content-Disposition": 'attachment; filename="digest-my-data.json"'},
        )

    @app.post("/preferences/<token>/delete")
    def delete(token: str) -> tuple[str, int]:
        check_csrf()
        sub, token = prefs_subscriber(token)
        if request.form.get("confirm_delete") != "yes":
            return prefs_page(sub, token, errors={"delete": "tick the box to confirm"},
                              status=400)
        signup.delete_subscriber(cfg, db, sub.id, now=clock(),
                                 reason="deleted by subscriber")
        return message("Deleted",
                       "Your address, name, interests, ratings and the digests we sent you "
                       "are deleted. We keep only a one-way hash of your address, so "
                       "nobody can sign it up again without your confirmation.")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        # Browsers ask for it on every page; an empty answer beats a logged 404.
        return Response(status=204)

    @app.get("/healthz")
    def healthz() -> Response:
        # A monitor or a load balancer asks: "ok" only when the database answers too
        # (without it every sign-up and preferences page is a 503).
        try:
            db.schema_version()
        except StoreError as err:
            log.error("health check: database error: %s", err)
            return Response("database unavailable\n", status=503, mimetype="text/plain")
        return Response("ok\n", mimetype="text/plain")

    return app


@dataclass(frozen=True)
class Blocked:
    """Why and since when mail to a subscriber's address is stopped (a bounce, a complaint)."""

    reason: str
    since: str


def _blocked(db: Store, sub: Subscriber) -> Blocked | None:
    """Return why mail to the subscriber's address is stopped, or None if it is not."""
    found = db.suppression(sub.email)
    if found is None:
        return None
    reason, since = found
    return Blocked(reason=reason, since=render.long_date(since.date()) if since else "")


def _schedule(sub: Subscriber) -> str:
    """Say when a subscriber's digest goes out."""
    return render.schedule_text(sub.cadence, sub.weekday, sub.send_hour, sub.timezone)


def _session_key(secret_key: str) -> str:
    """Return the session cookie's key, derived from a secret key."""
    return hmac.new(secret_key.encode(), b"digest.web.session", hashlib.sha256).hexdigest()


def _prefs_path(config: Config, sub: Subscriber) -> str:
    """Return the site-relative preferences link of a subscriber (same token as in digests)."""
    return tokens.preferences_url(_base_path(config), config.secret_key, sub.id)


def _base_path(config: Config) -> str:
    """Return the path of DIGEST_BASE_URL without its final slash ("" at a host's root)."""
    return urlsplit(config.base_url).path.rstrip("/")


def _mounted(wsgi_app: WSGIApplication, prefix: str) -> WSGIApplication:
    """Serve ``wsgi_app`` under ``prefix``, whether a proxy in front took it off or not."""

    # WSGI's PATH_INFO and SCRIPT_NAME are decoded, as latin-1 strings of the bytes: the
    # base URL's path is %-encoded (config), so "/d%C3%AFgest" arrives as "/dÃ¯gest".
    wsgi_prefix = unquote(prefix).encode("utf-8").decode("latin-1")

    def mounted(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == wsgi_prefix or path.startswith(wsgi_prefix + "/"):
            environ["PATH_INFO"] = path[len(wsgi_prefix):] or "/"
        # url_for() writes every link of the pages under it either way.
        environ["SCRIPT_NAME"] = wsgi_prefix
        return wsgi_app(environ, start_response)

    return mounted


def get_store(app: Flask) -> Store:
    """Return the Store an app was built with (for tests and the CLI)."""
    store: Store = app.extensions["digest"]["store"]
    return store


__all__ = ["DigestError", "create_app", "get_store"]
