"""Bearer JWTs through the real bridge and server: a token acts as the virtual key its `vk`
names, an admin token reads any job, and every token that does not verify is 401
`invalid_token` before anything else is looked at. HS256 from a secret, RS256 and ES256
from a JWKS file, over REST and over gRPC."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from asyncgate.v1 import job_service_pb2 as pb
from grpc_server.config import AuthSettings
from tests.conftest import KEY_A, KEY_B, Stack, StackFactory
from tests.grpc_details import error_details
from tests.rest import edit_form, submit

SECRET = "a-test-hs256-secret-of-at-least-32-bytes"
EDITS = "/v1/async/images/edits"


def token(claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256", kid: str | None = None) -> str:
    now = int(time.time())
    payload = {"exp": now + 300, "iat": now, **claims}
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


async def poll(stack: Stack, job_id: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with stack.http.get(f"{EDITS}/{job_id}", headers=headers) as response:
        return response.status, await response.json()


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack(auth=AuthSettings(jwt_secret=SECRET, issuer="https://auth.test", audience="ag"))


def claims(**extra: Any) -> dict[str, Any]:
    return {"iss": "https://auth.test", "aud": "ag", **extra}


async def test_a_token_acts_as_the_virtual_key_it_names(stack: Stack) -> None:
    status, accepted = await submit(stack.http, edit_form(), bearer(token(claims(vk=KEY_A.id))))
    assert status == 202, accepted
    assert (await poll(stack, accepted["id"], {"x-bf-vk": KEY_A.value}))[0] in (200, 202)
    assert (await poll(stack, accepted["id"], {"x-bf-vk": KEY_B.value}))[0] == 404
    assert (await poll(stack, accepted["id"], {}))[0] == 404
    stored = await stack.server.store.get_job(accepted["id"])
    assert stored is not None and stored.owner_key_id == KEY_A.id


async def test_an_admin_token_reads_any_job(stack: Stack) -> None:
    _, accepted = await submit(stack.http, edit_form(), {"x-bf-vk": KEY_A.value})
    admin = bearer(token(claims(role="admin")))
    assert (await poll(stack, accepted["id"], admin))[0] in (200, 202)
    other = bearer(token(claims(vk=KEY_B.id)))
    assert (await poll(stack, accepted["id"], other))[0] == 404


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (lambda: token(claims(vk=KEY_A.id, exp=int(time.time()) - 60)), "expired"),
        (lambda: token(claims(vk=KEY_A.id, nbf=int(time.time()) + 600)), "not valid yet"),
        (lambda: token(claims(vk=KEY_A.id), key="another-secret-that-is-32-bytes-long!"), "not valid"),
        (lambda: token(claims(vk="vk-nobody")), "does not exist"),
        (lambda: token(claims()), "no virtual key"),
        (lambda: token({**claims(vk=KEY_A.id), "aud": "someone-else"}), "not valid"),
        (lambda: token({**claims(vk=KEY_A.id), "iss": "https://evil.test"}), "not valid"),
        (lambda: jwt.encode({**claims(vk=KEY_A.id)}, SECRET, algorithm="HS256"), "not valid"),  # no exp
        (lambda: jwt.encode({**claims(vk=KEY_A.id), "exp": 9e9}, "", algorithm="none"), "no key"),
    ],
    ids=["expired", "nbf", "signature", "unknown-vk", "no-vk-no-role", "aud", "iss", "no-exp", "alg-none"],
)
async def test_a_token_that_does_not_verify_is_401_before_anything_else(
    stack: Stack, bad: Any, why: str
) -> None:
    # The form is invalid too (no image): the token is refused first.
    status, body = await submit(stack.http, edit_form(images=[]), bearer(bad()))
    assert status == 401, body
    assert body["error"]["code"] == "invalid_token" and why in body["error"]["message"]
    assert stack.stored_jobs() == 0


async def test_the_same_token_over_grpc(stack: Stack) -> None:
    _, accepted = await submit(stack.http, edit_form(), {"x-bf-vk": KEY_A.value})
    metadata = (("authorization", f"Bearer {token(claims(vk=KEY_A.id))}"),)
    job = (await stack.stub.GetJob(pb.GetJobRequest(id=accepted["id"]), metadata=metadata)).job
    assert job.id == accepted["id"]
    expired = (("authorization", f"Bearer {token(claims(vk=KEY_A.id, exp=1))}"),)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.GetJob(pb.GetJobRequest(id=accepted["id"]), metadata=expired)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_details(refused.value)[0] == "INVALID_TOKEN"


def _jwks(tmp_path: Path) -> tuple[Path, rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    public = []
    for kid, algorithm, key in (("r1", "RS256", rsa_key), ("e1", "ES256", ec_key)):
        jwk = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(key.public_key()))
        public.append({**jwk, "kid": kid, "alg": algorithm, "use": "sig"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": public}))
    return path, rsa_key, ec_key


async def test_rs256_and_es256_tokens_verify_with_the_jwks_keys(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    path, rsa_key, ec_key = _jwks(tmp_path)
    stack = await make_stack(auth=AuthSettings(jwks_file=path))
    for key, algorithm, kid in ((rsa_key, "RS256", "r1"), (ec_key, "ES256", "e1")):
        status, body = await submit(
            stack.http, edit_form(), bearer(token({"vk": KEY_A.id}, key, algorithm, kid))
        )
        assert status == 202, (algorithm, body)
    # A key the server does not know, and an HS256 token when no secret is configured.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for bad in (token({"vk": KEY_A.id}, stranger, "RS256", "r1"), token({"vk": KEY_A.id})):
        status, body = await submit(stack.http, edit_form(), bearer(bad))
        assert status == 401 and body["error"]["code"] == "invalid_token", body


async def test_without_auth_settings_a_bearer_token_is_no_key(make_stack: StackFactory) -> None:
    stack = await make_stack()
    status, accepted = await submit(stack.http, edit_form(), bearer(token({"vk": KEY_A.id})))
    assert status == 202, accepted  # the gateway's rule: a bearer that is not sk-bf-... is no key
    stored = await stack.server.store.get_job(accepted["id"])
    assert stored is not None and stored.owner_key_id is None
    # Virtual keys in Authorization keep working as before.
    status, _ = await submit(stack.http, edit_form(), bearer(KEY_A.value))
    assert status == 202
