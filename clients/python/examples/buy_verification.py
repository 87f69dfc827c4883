#!/usr/bin/env python3
"""Buys a verification and waits for its code on the WatchVerification stream.

Credentials come from the environment: NAMASKAH_API_KEY (an `nsk_…` key), or
NAMASKAH_EMAIL and NAMASKAH_PASSWORD (a Login, whose access token is sent as a bearer
token). Against a sandbox server it can also set the account up: `--register MAIL_SINK`
registers NAMASKAH_EMAIL and verifies it with the token from the mail sink, and
`--fund-cents N` tops the wallet up through the sandbox gateway.

    PYTHONPATH=clients/python/src python clients/python/examples/buy_verification.py \
        --target localhost:50051 --service whatsapp --country GB

It prints `code <verification name> <code>` and exits 0 when a code arrives, and exits 1
when the verification ends without one.
"""

import argparse
import json
import os
import re
import sys
import time
import uuid

import grpc
from google.rpc import error_details_pb2, status_pb2

from namaskah.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    common_pb2,
    sandbox_pb2,
    sandbox_pb2_grpc,
    verification_pb2,
    verification_pb2_grpc,
    wallet_pb2,
    wallet_pb2_grpc,
)

Status = verification_pb2.VerificationStatus
ENDED = {
    Status.VERIFICATION_STATUS_COMPLETED,
    Status.VERIFICATION_STATUS_CANCELLED,
    Status.VERIFICATION_STATUS_EXPIRED,
    Status.VERIFICATION_STATUS_FAILED,
}


def mailed_token(mail_sink: str, to: str, wait: float = 15.0) -> str:
    """The token in the newest mail to `to` in the sandbox's JSON-lines mail sink."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        tokens = []
        if os.path.exists(mail_sink):
            with open(mail_sink, encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        continue
                    mail = json.loads(line)
                    found = re.search(r"token=([A-Za-z0-9_\-.~%]+)", mail.get("text", ""))
                    if to in mail.get("to", "") and found:
                        tokens.append(found.group(1))
        if tokens:
            return tokens[-1]
        time.sleep(0.1)
    raise SystemExit(f"no mail with a token for {to} in {mail_sink}")


def credentials(channel: grpc.Channel, args: argparse.Namespace) -> list[tuple[str, str]]:
    """The call metadata that identifies the caller: an API key or a bearer token."""
    api_key = os.environ.get("NAMASKAH_API_KEY")
    if api_key:
        return [("x-api-key", api_key)]
    email = os.environ.get("NAMASKAH_EMAIL")
    password = os.environ.get("NAMASKAH_PASSWORD")
    if not email or not password:
        raise SystemExit("set NAMASKAH_API_KEY, or NAMASKAH_EMAIL and NAMASKAH_PASSWORD")
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    if args.register:
        auth.Register(auth_pb2.RegisterRequest(email=email, password=password))
        token = mailed_token(args.register, email)
        auth.VerifyEmail(auth_pb2.VerifyEmailRequest(token=token))
        print(f"registered and verified {email}")
    login = auth.Login(auth_pb2.LoginRequest(email=email, password=password))
    print(f"signed in as {login.user.email}")
    return [("authorization", f"Bearer {login.tokens.access_token}")]


def fund(channel: grpc.Channel, metadata, cents: int) -> None:
    """Tops the wallet up through the sandbox gateway (sandbox servers only)."""
    wallet = wallet_pb2_grpc.WalletServiceStub(channel)
    top_up = wallet.CreateTopUp(
        wallet_pb2.CreateTopUpRequest(
            amount=common_pb2.Money(currency_code="USD", minor_units=cents),
            request_id=str(uuid.uuid4()),
        ),
        metadata=metadata,
    ).top_up
    sandbox_pb2_grpc.SandboxServiceStub(channel).CompletePayment(
        sandbox_pb2.CompletePaymentRequest(
            reference=top_up.reference,
            outcome=sandbox_pb2.SANDBOX_PAYMENT_OUTCOME_SUCCEEDED,
        ),
        metadata=metadata,
    )
    balance = wallet.GetBalance(wallet_pb2.GetBalanceRequest(), metadata=metadata).balance
    print(f"balance {balance.minor_units} {balance.currency_code} cents")


def describe(error: grpc.RpcError) -> str:
    """`CODE REASON: message`, with the reason from the `google.rpc.ErrorInfo` detail."""
    reason = ""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    reason = f" {info.reason}"
    return f"{error.code().name}{reason}: {error.details()}"


def main() -> int:
    try:
        return buy()
    except grpc.RpcError as error:
        print(f"error {describe(error)}", file=sys.stderr)
        return 2


def buy() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="localhost:50051", help="gRPC address")
    parser.add_argument("--service", default="whatsapp")
    parser.add_argument("--country", default="GB")
    parser.add_argument("--register", metavar="MAIL_SINK", help="register first (sandbox)")
    parser.add_argument("--fund-cents", type=int, default=0, help="top up first (sandbox)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
    args = parser.parse_args()

    with grpc.insecure_channel(args.target) as channel:
        metadata = credentials(channel, args)
        if args.fund_cents:
            fund(channel, metadata, args.fund_cents)

        verifications = verification_pb2_grpc.VerificationServiceStub(channel)
        created = verifications.CreateVerification(
            verification_pb2.CreateVerificationRequest(
                service=args.service,
                country=args.country,
                # A retry with the same id returns the same verification, never a second one.
                request_id=str(uuid.uuid4()),
            ),
            metadata=metadata,
        ).verification
        print(f"bought {created.name}: {created.phone_number}, "
              f"{created.price.minor_units} {created.price.currency_code} cents")

        stream = verifications.WatchVerification(
            verification_pb2.WatchVerificationRequest(name=created.name),
            metadata=metadata,
            timeout=args.timeout,
        )
        for answer in stream:
            event = answer.event
            verification = event.verification
            print(f"event {event.sequence} "
                  f"{verification_pb2.VerificationEventType.Name(event.type)}: "
                  f"{Status.Name(verification.status)}")
            if verification.code:
                print(f"code {verification.name} {verification.code}")
                stream.cancel()
                return 0
            if verification.status in ENDED:
                break
    print("the verification ended without a code", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
