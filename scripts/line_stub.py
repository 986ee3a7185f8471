#!/usr/bin/env python3
"""A stand-in for LINE's APIs, for trying the README without a LINE channel.

It answers every endpoint line-adapter calls, on one port for both bases
(Messaging API and data API), with the shapes of LINE's OpenAPI
descriptions: channel access tokens (v2, v2.1 by JWT assertion, v3; revoke;
the v2.1 key ids), bot info, profiles, group summaries and members, sends
(reply, push, multicast, broadcast), quota and sent counts, the webhook
endpoint and its test, the loading animation, mark-as-read, message
content, rich menus (with their images, aliases and the default, kept per
channel), the follower statistics and demographics of insight, audiences
(JSON and file uploads, kept per channel), narrowcasts (accepted with 202,
`succeeded` on the third progress read) and link tokens. Bot calls need `Authorization: Bearer <a token it issued>`, as at
LINE, so a call with no token or a stale one gets LINE's 401.

Python standard library only. Nothing is checked beyond what LINE would
refuse outright; it is a stand-in for trying commands, not a contract test
(CI runs those against Prism).

    python3 scripts/line_stub.py --port 8090
    LINE_ADAPTER_LINE_API_BASE=http://127.0.0.1:8090 \
    LINE_ADAPTER_LINE_DATA_API_BASE=http://127.0.0.1:8090 line-adapter serve

--port 0 picks a free port; --port-file writes the port once it listens.
--log writes one JSON line per request (method, path, the headers LINE
cares about, body) for scripts that check what was sent. --slow PATH=SECONDS
answers requests to PATH that much later (repeatable), for a call still in
flight when the service is stopped.
"""

import argparse
import base64
import binascii
import json
import os
import re
import secrets
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

USER_ID = re.compile(r"^U[0-9a-f]{32}$")
GROUP_ID = re.compile(r"^C[0-9a-f]{32}$")
ROOM_ID = re.compile(r"^R[0-9a-f]{32}$")
DATE = re.compile(r"^[0-9]{8}$")
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# A 1x1 PNG, the content of every message.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


class Line:
    """What LINE remembers: issued tokens and each channel's webhook."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tokens = {}  # access token -> {"channel", "kind", "key_id", "expires"}
        self.webhooks = {}  # LINE channel id -> endpoint
        self.rich_menus = {}  # LINE channel id -> RichMenus
        self.audiences = {}  # LINE channel id -> {audience id: AudienceGroup dict}
        self.narrowcasts = {}  # request id -> progress reads so far
        self.log = None
        self.slow = {}  # path -> seconds

    def issue(self, channel, kind, lifetime, key_id=""):
        token = kind + "-" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = {
                "channel": channel,
                "kind": kind,
                "key_id": key_id,
                "expires": time.time() + lifetime,
            }
        return token

    def channel_of(self, token):
        with self.lock:
            issued = self.tokens.get(token)
            if issued and issued["expires"] > time.time():
                return issued["channel"]
        return None

    def revoke(self, token):
        with self.lock:
            return self.tokens.pop(token, None) is not None

    def kids(self, channel):
        with self.lock:
            return [
                t["key_id"]
                for t in self.tokens.values()
                if t["channel"] == channel and t["kind"] == "v21"
            ]

    def menus(self, channel):
        with self.lock:
            return self.rich_menus.setdefault(channel, RichMenus())

    def record(self, entry):
        if self.log is None:
            return
        with self.lock:
            self.log.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self.log.flush()


class RichMenus:
    """One channel's rich menus as LINE keeps them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.menus = {}  # id -> {"json": dict, "image": (content type, bytes) or None}
        self.aliases = {}  # alias id -> rich menu id
        self.default = None


LINE = Line()

MENU_ID = re.compile(r"^richmenu-[0-9a-f]{32}$")
ALIAS_ID = re.compile(r"^[a-z0-9_-]{1,32}$")


def jwt_claims(assertion):
    """The header and claims of a JWT, unverified (None if it is not one)."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return None

    def part(text):
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))

    try:
        return part(parts[0]), part(parts[1])
    except (ValueError, binascii.Error):
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "line-stub"

    def log_message(self, format, *args):  # quiet: --log records requests
        pass

    # -- plumbing -------------------------------------------------------

    def answer(self, status, body=None, content_type="application/json", headers=()):
        if body is None:
            data = b""
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        if not any(name.lower() == "x-line-request-id" for name, _ in headers):
            self.send_header("x-line-request-id", str(uuid.uuid4()))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def error(self, status, message, details=None):
        body = {"message": message}
        if details:
            body["details"] = details
        self.answer(status, body)

    def oauth_error(self, status, error, description):
        self.answer(status, {"error": error, "error_description": description})

    def read_body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def form(self, raw):
        return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}

    def json_body(self, raw):
        try:
            value = json.loads(raw or b"null")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def bearer_channel(self):
        """The LINE channel the request's token belongs to, else None (401 sent)."""
        header = self.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        channel = LINE.channel_of(token) if token else None
        if channel is None:
            self.error(401, "Authentication failed. Confirm that the access token in the authorization header is valid.")
        return channel

    def handle_any(self):
        url = urlsplit(self.path)
        raw = self.read_body()
        LINE.record(
            {
                "method": self.command,
                "path": self.path,
                "headers": {
                    name: self.headers[name]
                    for name in ("content-type", "x-line-retry-key", "traceparent")
                    if self.headers.get(name)
                },
                "authorized": bool(self.headers.get("authorization")),
                "body": raw.decode("utf-8", "replace"),
            }
        )
        delay = LINE.slow.get(url.path)
        if delay:
            time.sleep(delay)
        route(self, self.command, url.path, parse_qs(url.query), raw)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


# -- endpoints ----------------------------------------------------------


def issue_token(h, path, raw):
    form = h.form(raw)
    if form.get("grant_type") != "client_credentials":
        return h.oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
    if path == "/oauth2/v2.1/token":
        if form.get("client_assertion_type") != JWT_BEARER:
            return h.oauth_error(400, "invalid_request", "client_assertion_type is invalid")
        parsed = jwt_claims(form.get("client_assertion", ""))
        if parsed is None:
            return h.oauth_error(400, "invalid_client", "client_assertion is not a JWT")
        header, claims = parsed
        if header.get("alg") != "RS256" or not header.get("kid"):
            return h.oauth_error(400, "invalid_client", "the JWT header needs alg RS256 and a kid")
        channel = str(claims.get("iss", ""))
        lifetime = int(claims.get("token_exp") or 2592000)
        key_id = secrets.token_urlsafe(16)
        token = LINE.issue(channel, "v21", lifetime, key_id)
        return h.answer(200, {"access_token": token, "expires_in": lifetime,
                              "token_type": "Bearer", "key_id": key_id})
    if not form.get("client_id") or not form.get("client_secret"):
        return h.oauth_error(400, "invalid_request", "client_id and client_secret are required")
    if path == "/v2/oauth/accessToken":
        lifetime = 2592000
        token = LINE.issue(form["client_id"], "v2", lifetime)
    else:  # /oauth2/v3/token: stateless, 15 minutes
        lifetime = 900
        token = LINE.issue(form["client_id"], "v3", lifetime)
    return h.answer(200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})


def revoke_token(h, raw):
    form = h.form(raw)
    if not form.get("access_token"):
        return h.oauth_error(400, "invalid_request", "access_token is required")
    LINE.revoke(form["access_token"])  # revoking an unknown token is not an error at LINE
    return h.answer(200, None)


def list_kids(h, query):
    assertion = (query.get("client_assertion") or [""])[0]
    parsed = jwt_claims(assertion)
    if parsed is None:
        return h.oauth_error(400, "invalid_client", "client_assertion is not a JWT")
    return h.answer(200, {"kids": LINE.kids(str(parsed[1].get("iss", "")))})


def send(h, kind, raw):
    body = h.json_body(raw)
    if body is None:
        return h.error(400, "The request body has 1 error(s)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
        return h.error(400, "The request body has 1 error(s)",
                       [{"message": "Size must be between 1 and 5", "property": "messages"}])
    for i, message in enumerate(messages):
        sender = message.get("sender") if isinstance(message, dict) else None
        if isinstance(sender, dict) and len(sender.get("name", "")) > 20:
            return h.error(400, "The request body has 1 error(s)",
                           [{"message": "Length must be between 0 and 20",
                             "property": f"messages[{i}].sender.name"}])
    if kind == "reply":
        if not body.get("replyToken"):
            return h.error(400, "Invalid reply token")
    elif kind == "push":
        to = body.get("to", "")
        if not (USER_ID.match(to) or GROUP_ID.match(to) or ROOM_ID.match(to)):
            return h.error(400, "The property, 'to', in the request body is invalid (line: -, column: -)")
    elif kind == "multicast":
        to = body.get("to")
        if not isinstance(to, list) or not 1 <= len(to) <= 500:
            return h.error(400, "The request body has 1 error(s)",
                           [{"message": "Size must be between 1 and 500", "property": "to"}])
    if kind in ("reply", "push"):
        sent = [{"id": str(460000000000000000 + secrets.randbelow(10**15)),
                 "quoteToken": secrets.token_urlsafe(12)} for _ in messages]
        return h.answer(200, {"sentMessages": sent})
    return h.answer(200, {})


def rich_menu_error(menu):
    """LINE's complaint about a rich menu object, or None."""
    size = menu.get("size") if isinstance(menu.get("size"), dict) else {}
    width, height = size.get("width"), size.get("height")
    if not isinstance(width, int) or not isinstance(height, int):
        return "size", "must be specified"
    if not 800 <= width <= 2500 or height < 250 or width / height < 1.45:
        return "size", "invalid size"
    if not 1 <= len(str(menu.get("chatBarText", ""))) <= 14:
        return "chatBarText", "Length must be between 1 and 14"
    areas = menu.get("areas")
    if not isinstance(areas, list) or len(areas) > 20:
        return "areas", "Size must be between 0 and 20"
    for i, area in enumerate(areas):
        action = area.get("action") if isinstance(area, dict) else None
        if not isinstance(action, dict) or not action.get("type"):
            return f"areas[{i}].action", "must be specified"
    return None


def rich_menus(h, method, path, channel, raw):
    """Answers a rich menu endpoint; False for a path that is not one."""
    menus = LINE.menus(channel)
    ok = lambda: h.answer(200, {})
    with menus.lock:
        if path in ("/v2/bot/richmenu", "/v2/bot/richmenu/validate") and method == "POST":
            menu = h.json_body(raw)
            problem = rich_menu_error(menu) if menu is not None else ("", "The request body is invalid")
            if problem:
                return h.error(400, "The request body has 1 error(s)",
                               [{"message": problem[1], "property": problem[0]}])
            if path.endswith("/validate"):
                return ok()
            if len(menus.menus) >= 1000:
                return h.error(400, "The maximum number of rich menus has been reached")
            menu_id = "richmenu-" + secrets.token_hex(16)
            menus.menus[menu_id] = {"json": menu, "image": None}
            return h.answer(200, {"richMenuId": menu_id})
        if method == "GET" and path == "/v2/bot/richmenu/list":
            return h.answer(200, {"richmenus": [dict(m["json"], richMenuId=i) for i, m in menus.menus.items()]})
        if path == "/v2/bot/richmenu/alias" and method == "POST":
            body = h.json_body(raw) or {}
            alias, menu_id = str(body.get("richMenuAliasId", "")), body.get("richMenuId")
            if not ALIAS_ID.match(alias):
                return h.error(400, "The request body has 1 error(s)",
                               [{"message": "invalid alias id", "property": "richMenuAliasId"}])
            if alias in menus.aliases:
                return h.error(400, "conflict richmenu alias id")
            if menu_id not in menus.menus or menus.menus[menu_id]["image"] is None:
                return h.error(400, "richmenu not found or has no image")
            menus.aliases[alias] = menu_id
            return ok()
        if method == "GET" and path == "/v2/bot/richmenu/alias/list":
            return h.answer(200, {"aliases": [{"richMenuAliasId": a, "richMenuId": m}
                                              for a, m in menus.aliases.items()]})
        m = re.fullmatch(r"/v2/bot/richmenu/alias/([^/]+)", path)
        if m:
            alias = m.group(1)
            if alias not in menus.aliases:
                return h.error(404, "Not found")
            if method == "GET":
                return h.answer(200, {"richMenuAliasId": alias, "richMenuId": menus.aliases[alias]})
            if method == "POST":
                menu_id = (h.json_body(raw) or {}).get("richMenuId")
                if menu_id not in menus.menus:
                    return h.error(400, "richmenu not found")
                menus.aliases[alias] = menu_id
                return ok()
            if method == "DELETE":
                del menus.aliases[alias]
                return ok()
        m = re.fullmatch(r"/v2/bot/richmenu/(richmenu-[0-9a-f]{32})(/content)?", path)
        if m:
            menu = menus.menus.get(m.group(1))
            if menu is None:
                return h.error(404, "Not found")
            if m.group(2) and method == "POST":
                content_type = h.headers.get("content-type", "")
                if content_type not in ("image/png", "image/jpeg"):
                    return h.error(415, "Unsupported Media Type")
                if not raw or len(raw) > 1024 * 1024:
                    return h.error(400, "The image must be at most 1 MB")
                if menu["image"] is not None:
                    return h.error(400, "An image has already been uploaded to the richmenu")
                menu["image"] = (content_type, raw)
                return ok()
            if m.group(2) and method == "GET":
                if menu["image"] is None:
                    return h.error(404, "Not found")
                return h.answer(200, menu["image"][1], content_type=menu["image"][0])
            if method == "GET":
                return h.answer(200, dict(menu["json"], richMenuId=m.group(1)))
            if method == "DELETE":
                del menus.menus[m.group(1)]
                menus.aliases = {a: i for a, i in menus.aliases.items() if i != m.group(1)}
                if menus.default == m.group(1):
                    menus.default = None
                return ok()
        m = re.fullmatch(r"/v2/bot/user/all/richmenu(?:/([^/]+))?", path)
        if m:
            if method == "POST" and m.group(1):
                menu = menus.menus.get(m.group(1))
                if menu is None:
                    return h.error(404, "Not found")
                if menu["image"] is None:
                    return h.error(400, "must upload richmenu image before applying it to user")
                menus.default = m.group(1)
                return ok()
            if method == "GET" and not m.group(1):
                if menus.default is None:
                    return h.error(404, "no default richmenu")
                return h.answer(200, {"richMenuId": menus.default})
            if method == "DELETE" and not m.group(1):
                menus.default = None
                return ok()
    return False


def upload_ids(h, raw):
    """The ids of a JSON or file upload, and its fields; None (400 sent) if bad."""
    content_type = h.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        boundary = content_type.split("boundary=", 1)[-1].encode()
        fields, ids = {}, None
        for part in raw.split(b"--" + boundary)[1:-1]:
            head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
            name = re.search(rb'name="([^"]+)"', head)
            if name and name.group(1) == b"file":
                ids = value.decode().split()
            elif name:
                fields[name.group(1).decode()] = value.decode()
        if ids is None:
            h.error(400, "The request body has 1 error(s)", [{"message": "must be specified", "property": "file"}])
            return None
        return fields, ids
    body = h.json_body(raw)
    if body is None or len(body.get("audiences", [])) > 10000:
        h.error(400, "The request body has 1 error(s)", [{"message": "Size must be between 0 and 10000", "property": "audiences"}])
        return None
    return body, [a.get("id", "") for a in body.get("audiences", [])]


def audiences(h, method, path, channel, query, raw):
    """Answers an audience endpoint; False for another path."""
    with LINE.lock:
        groups = LINE.audiences.setdefault(channel, {})
    if path in ("/v2/bot/audienceGroup/upload", "/v2/bot/audienceGroup/upload/byFile"):
        upload = upload_ids(h, raw)
        if upload is None:
            return None
        fields, ids = upload
        if method == "POST":
            description = str(fields.get("description", ""))
            if not 1 <= len(description) <= 120:
                return h.error(400, "The request body has 1 error(s)",
                               [{"message": "Length must be between 1 and 120", "property": "description"}])
            group_id = 1234567890000 + len(groups) + 1
            groups[group_id] = {
                "audienceGroupId": group_id, "type": "UPLOAD", "description": description,
                "status": "READY", "audienceCount": len(set(ids)), "created": int(time.time()),
                "permission": "READ_WRITE", "createRoute": "MESSAGING_API",
                "isIfaAudience": str(fields.get("isIfaAudience", "false")).lower() == "true",
            }
            created = {k: v for k, v in groups[group_id].items() if k not in ("status", "audienceCount")}
            return h.answer(202, created)
        if method == "PUT":
            group = groups.get(int(fields.get("audienceGroupId") or 0))
            if group is None:
                return h.error(400, "audience group not found", [{"message": "AUDIENCE_GROUP_NOT_FOUND"}])
            group["audienceCount"] += len(set(ids))
            return h.answer(202, {})
    if method == "GET" and path == "/v2/bot/audienceGroup/list":
        page = int((query.get("page") or ["1"])[0])
        size = int((query.get("size") or ["20"])[0])
        found = sorted(groups.values(), key=lambda g: -g["audienceGroupId"])
        shown = found[(page - 1) * size: page * size]
        return h.answer(200, {"audienceGroups": shown, "hasNextPage": page * size < len(found),
                              "totalCount": len(found), "readWriteAudienceGroupTotalCount": len(found),
                              "page": page, "size": size})
    m = re.fullmatch(r"/v2/bot/audienceGroup/([0-9]+)", path)
    if m and method in ("GET", "DELETE"):
        group = groups.get(int(m.group(1)))
        if group is None:
            return h.error(400, "audience group not found", [{"message": "AUDIENCE_GROUP_NOT_FOUND"}])
        if method == "DELETE":
            del groups[int(m.group(1))]
            return h.answer(200, {})
        return h.answer(200, {"audienceGroup": group, "jobs": []})
    return False


def narrowcast(h, raw):
    body = h.json_body(raw)
    if body is None or not body.get("messages"):
        return h.error(400, "The request body has 1 error(s)",
                       [{"message": "Size must be between 1 and 5", "property": "messages"}])
    request_id = str(uuid.uuid4())
    with LINE.lock:
        LINE.narrowcasts[request_id] = 0
    return h.answer(202, {}, headers=[("x-line-request-id", request_id)])


def narrowcast_progress(h, query):
    request_id = (query.get("requestId") or [""])[0]
    with LINE.lock:
        reads = LINE.narrowcasts.get(request_id)
        if reads is not None:
            LINE.narrowcasts[request_id] = reads + 1
    if reads is None:
        return h.error(404, "Not found")
    accepted = "2026-12-03T10:15:30.121Z"
    if reads < 2:
        return h.answer(200, {"phase": "waiting" if reads == 0 else "sending", "acceptedTime": accepted})
    return h.answer(200, {"phase": "succeeded", "successCount": 1180, "failureCount": 20,
                          "targetCount": 1200, "acceptedTime": accepted,
                          "completedTime": "2026-12-03T10:25:30.121Z"})


def insight(h, method, path, query):
    """Answers an insight endpoint (fixed numbers); False for another path."""
    if method != "GET":
        return False
    if path == "/v2/bot/insight/followers":
        date = (query.get("date") or [""])[0]
        if date and not DATE.match(date):
            return h.error(400, "The value for the 'date' parameter is invalid")
        if date and date >= time.strftime("%Y%m%d", time.gmtime(time.time() + 9 * 3600)):
            return h.answer(200, {"status": "unready"})
        return h.answer(200, {"status": "ready", "followers": 7620, "targetedReaches": 5848, "blocks": 237})
    if path == "/v2/bot/insight/demographic":
        return h.answer(200, {
            "available": True,
            "genders": [{"gender": "female", "percentage": 52.4}, {"gender": "male", "percentage": 41.1},
                        {"gender": "unknown", "percentage": 6.5}],
            "ages": [{"age": "from20to24", "percentage": 31.8}, {"age": "from25to29", "percentage": 68.2}],
            "areas": [{"area": "東京", "percentage": 72.5}, {"area": "unknown", "percentage": 27.5}],
            "appTypes": [{"appType": "ios", "percentage": 62.4}, {"appType": "android", "percentage": 37.6}],
            "subscriptionPeriods": [{"subscriptionPeriod": "over365days", "percentage": 96.4},
                                    {"subscriptionPeriod": "within365days", "percentage": 3.6}],
        })
    return False


def route(h, method, path, query, raw):
    # Channel access tokens (no bearer).
    if method == "POST" and path in ("/v2/oauth/accessToken", "/oauth2/v2.1/token", "/oauth2/v3/token"):
        return issue_token(h, path, raw)
    if method == "POST" and path in ("/v2/oauth/revoke", "/oauth2/v2.1/revoke"):
        return revoke_token(h, raw)
    if method == "GET" and path == "/oauth2/v2.1/tokens/kid":
        return list_kids(h, query)

    if not path.startswith("/v2/bot/"):
        return h.error(404, "Not found")
    channel = h.bearer_channel()
    if channel is None:
        return

    if method == "GET" and path == "/v2/bot/info":
        return h.answer(200, {
            "userId": "Ub9952f8e0123456789abcdef01234567",
            "basicId": "@216ru" + channel[-4:],
            "displayName": "Tokyo shop",
            "pictureUrl": "https://profile.line-scdn.net/abcdefghijklmn",
            "chatMode": "chat",
            "markAsReadMode": "manual",
        })
    m = re.fullmatch(r"/v2/bot/profile/([^/]+)", path)
    if method == "GET" and m:
        if not USER_ID.match(m.group(1)):
            return h.error(404, "Not found")
        return h.answer(200, {
            "displayName": "Sato Hanako",
            "userId": m.group(1),
            "pictureUrl": "https://profile.line-scdn.net/ch/v2/p/uf9da5ee2b",
            "statusMessage": "Hello, LINE!",
            "language": "ja",
        })
    m = re.fullmatch(r"/v2/bot/group/([^/]+)/summary", path)
    if method == "GET" and m:
        if not GROUP_ID.match(m.group(1)):
            return h.error(404, "Not found")
        return h.answer(200, {"groupId": m.group(1), "groupName": "Tokyo regulars",
                              "pictureUrl": "https://profile.line-scdn.net/abcdefghijklmn"})
    m = re.fullmatch(r"/v2/bot/(group|room)/([^/]+)/member/([^/]+)", path)
    if method == "GET" and m:
        chat_ok = (GROUP_ID if m.group(1) == "group" else ROOM_ID).match(m.group(2))
        if not chat_ok or not USER_ID.match(m.group(3)):
            return h.error(404, "Not found")
        return h.answer(200, {"displayName": "Suzuki Taro", "userId": m.group(3),
                              "pictureUrl": "https://profile.line-scdn.net/ch/v2/p/uf9da5ee2c"})
    m = re.fullmatch(r"/v2/bot/message/(reply|push|multicast|broadcast)", path)
    if method == "POST" and m:
        return send(h, m.group(1), raw)
    if method == "POST" and path == "/v2/bot/message/narrowcast":
        return narrowcast(h, raw)
    if method == "GET" and path == "/v2/bot/message/progress/narrowcast":
        return narrowcast_progress(h, query)
    if path.startswith("/v2/bot/audienceGroup/"):
        if audiences(h, method, path, channel, query, raw) is False:
            h.error(404, "Not found")
        return
    m = re.fullmatch(r"/v2/bot/user/([^/]+)/linkToken", path)
    if method == "POST" and m:
        if not USER_ID.match(m.group(1)):
            return h.error(404, "Not found")
        return h.answer(200, {"linkToken": secrets.token_urlsafe(24)})
    if method == "GET" and path == "/v2/bot/message/quota":
        return h.answer(200, {"type": "limited", "value": 5000})
    if method == "GET" and path == "/v2/bot/message/quota/consumption":
        return h.answer(200, {"totalUsage": 1234})
    m = re.fullmatch(r"/v2/bot/message/delivery/(reply|push|multicast|broadcast)", path)
    if method == "GET" and m:
        date = (query.get("date") or [""])[0]
        if not DATE.match(date):
            return h.error(400, "The value for the 'date' parameter is invalid")
        counts = {"reply": 420, "push": 96, "multicast": 12, "broadcast": 0}
        return h.answer(200, {"status": "ready", "success": counts[m.group(1)]})
    m = re.fullmatch(r"/v2/bot/message/([0-9]+)/content(/preview)?", path)
    if method == "GET" and m:
        return h.answer(200, PNG, content_type="image/png")
    if path == "/v2/bot/channel/webhook/endpoint":
        if method == "GET":
            endpoint = LINE.webhooks.get(channel, "")
            return h.answer(200, {"endpoint": endpoint, "active": bool(endpoint)})
        if method == "PUT":
            body = h.json_body(raw) or {}
            endpoint = body.get("endpoint", "")
            if not endpoint.startswith("https://"):
                return h.error(400, "Invalid webhook endpoint URL")
            LINE.webhooks[channel] = endpoint
            return h.answer(200, {})
    if method == "POST" and path == "/v2/bot/channel/webhook/test":
        body = h.json_body(raw) or {}
        if not (body.get("endpoint") or LINE.webhooks.get(channel)):
            return h.error(400, "Webhook endpoint is not set")
        return h.answer(200, {"success": True,
                              "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                              "statusCode": 200, "reason": "OK", "detail": "200"})
    if method == "POST" and path == "/v2/bot/chat/loading/start":
        body = h.json_body(raw) or {}
        seconds = body.get("loadingSeconds", 20)
        if not USER_ID.match(str(body.get("chatId", ""))):
            return h.error(400, "The property, 'chatId', in the request body is invalid")
        if not isinstance(seconds, int) or not 5 <= seconds <= 60 or seconds % 5:
            return h.error(400, "The property, 'loadingSeconds', in the request body is invalid")
        return h.answer(202, {})
    if path.startswith(("/v2/bot/richmenu", "/v2/bot/user/all/richmenu")):
        if rich_menus(h, method, path, channel, raw) is False:
            h.error(404, "Not found")
        return
    if path.startswith("/v2/bot/insight/") and insight(h, method, path, query) is not False:
        return
    if method == "POST" and path == "/v2/bot/chat/markAsRead":
        body = h.json_body(raw) or {}
        if not body.get("markAsReadToken"):
            return h.error(400, "The request body has 1 error(s)",
                           [{"message": "must be specified", "property": "markAsReadToken"}])
        return h.answer(200, {})
    return h.error(404, "Not found")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--log", help="append one JSON line per request to this file")
    parser.add_argument("--slow", action="append", default=[], metavar="PATH=SECONDS",
                        help="answer requests to PATH this many seconds later")
    args = parser.parse_args()
    for rule in args.slow:
        path, _, seconds = rule.rpartition("=")
        LINE.slow[path] = float(seconds)
    if args.log:
        LINE.log = open(args.log, "a", encoding="utf-8")
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"LINE stand-in on http://{args.host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
