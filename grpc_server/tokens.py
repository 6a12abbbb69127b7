"""Bearer JWTs: who a token says its holder is, once its signature and claims check out.

- HS256 with the configured secret (its UTF-8 bytes), or RS256 / ES256 with a public key of
  the configured JWKS file (chosen by the token's `kid`; the only key when there is one and
  the token names none). Any other algorithm, `none` included, is refused.
- `exp` is required (a token that never expires is a standing password); `nbf` is checked
  when present; `iss` and `aud` when configured.
- Claim `vk` names a virtual key's id; claim `role: "admin"` makes an admin.

Every failure is InvalidToken (401 `invalid_token`), whose message says what was wrong and
never repeats the token.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from grpc_server.config import AuthSettings
from grpc_server.domain.errors import InvalidToken

ASYMMETRIC = ("RS256", "ES256")


@dataclass(frozen=True)
class TokenClaims:
    key_id: str | None
    """The virtual key the token acts as (claim `vk`)."""
    admin: bool


def looks_like_jwt(value: str) -> bool:
    """Three dot-separated parts: a JWT, not a virtual key (which never has two dots)."""
    return value.count(".") == 2


class TokenVerifier:
    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._secret = settings.jwt_secret.encode() if settings.jwt_secret else None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        if settings.jwks_file is not None:
            keys = jwt.PyJWKSet.from_json(settings.jwks_file.read_text()).keys
            self._keys = {key.key_id: key for key in keys}
            if len(keys) == 1:
                self._keys.setdefault(None, keys[0])

    @property
    def enabled(self) -> bool:
        return self._secret is not None or bool(self._keys)

    def verify(self, token: str) -> TokenClaims:
        if not self.enabled:
            raise InvalidToken("bearer tokens are not accepted by this server")
        try:
            header = jwt.get_unverified_header(token)
            algorithm = str(header.get("alg"))
            claims = jwt.decode(
                token,
                self._key(algorithm, header.get("kid")),
                algorithms=[algorithm],
                issuer=self._settings.issuer,
                audience=self._settings.audience,
                options={"require": ["exp"], "verify_aud": self._settings.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet (nbf)") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the token is not valid ({type(exc).__name__})") from None
        key_id, role = claims.get("vk"), claims.get("role")
        if key_id is not None and not isinstance(key_id, str):
            raise InvalidToken("the token's vk claim must be a string")
        return TokenClaims(key_id=key_id, admin=role == "admin")

    def _key(self, algorithm: str, kid: object) -> bytes | jwt.PyJWK:
        if algorithm == "HS256" and self._secret is not None:
            return self._secret
        if algorithm in ASYMMETRIC and (key := self._keys.get(kid if isinstance(kid, str) else None)):
            return key
        raise InvalidToken(f"no key to verify a {algorithm} token{f' with kid {kid}' if kid else ''}")
