"""A stand-in OIDC provider for the end-to-end tests: makes an RSA key, writes its JWKS to
DIR/jwks.json and prints signed tokens (PyJWT) as JSON: valid ones per subject and groups,
expired, wrong-audience, wrong-issuer and foreign-key ones, and one signed with the next
key (DIR/jwks_rotated.json publishes both).

    python oidc_issuer.py DIR ISSUER AUDIENCE
"""

import json
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


def main() -> None:
    out_dir, issuer, audience = sys.argv[1], sys.argv[2], sys.argv[3]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": "test-key", "use": "sig", "alg": "RS256"})
    with open(f"{out_dir}/jwks.json", "w") as f:
        json.dump({"keys": [public]}, f)
    # The provider's next key, published later next to the first one.
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rotated_public = json.loads(RSAAlgorithm.to_jwk(rotated.public_key()))
    rotated_public.update({"kid": "rotated-key", "use": "sig", "alg": "RS256"})
    with open(f"{out_dir}/jwks_rotated.json", "w") as f:
        json.dump({"keys": [public, rotated_public]}, f)

    now = int(time.time())

    def token(sub, groups=(), signer=key, kid="test-key", **over):
        claims = {"iss": issuer, "aud": audience, "sub": sub, "iat": now,
                  "exp": now + 600, "groups": list(groups)}
        claims.update(over)
        return jwt.encode(claims, signer, algorithm="RS256", headers={"kid": kid})

    print(json.dumps({
        "finance": token("fin@example.com", ["finance"]),
        "plain": token("bob@example.com"),
        "declared": token("carol@example.com"),
        "expired": token("bob@example.com", exp=now - 3600, iat=now - 7200),
        "wrong_audience": token("bob@example.com", aud="someone-else"),
        "wrong_issuer": token("bob@example.com", iss="https://evil.example.com"),
        "foreign_key": token("bob@example.com", signer=other),
        "rotated": token("fin@example.com", ["finance"], signer=rotated, kid="rotated-key"),
    }))


if __name__ == "__main__":
    main()
