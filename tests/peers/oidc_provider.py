"""A stand-in OIDC provider with the authorization code flow and PKCE (S256), for the
console's sign-in test. It signs in one fixed user without asking, on 127.0.0.1, a free port.

    python oidc_provider.py DIR CLIENT_ID SUBJECT [GROUP...]

Writes DIR/jwks.json, then prints `provider listening on 127.0.0.1:PORT`; the issuer is
`http://127.0.0.1:PORT`. Endpoints:

    GET  /.well-known/openid-configuration
    GET  /authorize   response_type=code, client_id, redirect_uri, state, nonce,
                      code_challenge, code_challenge_method=S256 -> 302 redirect_uri?code&state
    POST /token       grant_type=authorization_code, code, redirect_uri, client_id,
                      code_verifier -> {"id_token": ...}; a code is good once, and only with
                      the verifier of its challenge (else 400 invalid_grant)

Every answer of /token is also printed as `token: ok` or `token: refused REASON`.
"""

import base64
import hashlib
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


def main() -> None:
    out_dir, client_id, subject, groups = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": "provider-key", "use": "sig", "alg": "RS256"})
    with open(f"{out_dir}/jwks.json", "w") as f:
        json.dump({"keys": [public]}, f)
    codes = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, body=None, headers=()):
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/.well-known/openid-configuration":
                return self.answer(200, {
                    "issuer": issuer,
                    "authorization_endpoint": issuer + "/authorize",
                    "token_endpoint": issuer + "/token",
                    "jwks_uri": issuer + "/jwks",
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                })
            if url.path == "/authorize":
                if (q.get("response_type") != "code" or q.get("client_id") != client_id
                        or q.get("code_challenge_method") != "S256"
                        or not q.get("code_challenge") or not q.get("state")):
                    return self.answer(400, {"error": "invalid_request"})
                code = secrets.token_urlsafe(24)
                with lock:
                    codes[code] = q
                target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
                return self.answer(302, None, [("Location", target)])
            return self.answer(404, {"error": "not_found"})

        def do_POST(self):
            if urlparse(self.path).path != "/token":
                return self.answer(404, {"error": "not_found"})
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            with lock:
                asked = codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            reason = None
            if asked is None:
                reason = "unknown or used code"
            elif form.get("grant_type") != "authorization_code":
                reason = "grant_type"
            elif form.get("client_id") != client_id or form.get("redirect_uri") != asked["redirect_uri"]:
                reason = "client or redirect"
            elif digest.rstrip(b"=").decode() != asked["code_challenge"]:
                reason = "pkce"
            if reason:
                print(f"token: refused {reason}", flush=True)
                return self.answer(400, {"error": "invalid_grant"})
            now = int(time.time())
            claims = {"iss": issuer, "aud": client_id, "sub": subject, "iat": now,
                      "exp": now + 600, "groups": groups, "nonce": asked.get("nonce")}
            token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "provider-key"})
            print("token: ok", flush=True)
            return self.answer(200, {"access_token": secrets.token_urlsafe(16),
                                     "token_type": "Bearer", "id_token": token})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    issuer = f"http://127.0.0.1:{port}"
    print(f"provider listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
