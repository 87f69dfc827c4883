// The page: sign in, buy a number, and show its code as soon as the stream brings it.
import { Code, ConnectError } from "@connectrpc/connect";
import { connect, formatMoney } from "./client";
import {
  VerificationEventType,
  VerificationStatus,
  type Verification,
} from "./gen/namaskah/v1/verification_pb";

const api = new URLSearchParams(location.search).get("api") ?? "http://localhost:8080";
const namaskah = connect(api);

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const value = (id: string) => $<HTMLInputElement>(id).value.trim();

function showError(err: unknown) {
  $("error").textContent =
    err instanceof ConnectError ? `${Code[err.code]}: ${err.rawMessage}` : String(err);
}

async function showBalance() {
  const { balance } = await namaskah.wallet.getBalance({});
  $("balance").textContent = formatMoney(balance);
}

function showVerification(v: Verification) {
  $("verification").hidden = false;
  $("phone-number").textContent = v.phoneNumber || "waiting for a number";
  $("price").textContent = formatMoney(v.price);
  $("status").textContent = VerificationStatus[v.status];
  if (v.code) $("code").textContent = v.code;
}

/** Stream failures worth reconnecting after: a server shutting down, a network break. */
const transient = (err: unknown) =>
  err instanceof ConnectError && (err.code === Code.Unavailable || err.code === Code.Unknown);

async function watch(name: string) {
  // A server stream over grpc-web: the current state first, then every change until the
  // verification ends. When it breaks, reconnect from the last sequence seen: the server
  // replays what was missed, so nothing is lost or shown twice.
  let seen = 0n;
  for (let failures = 0; ; ) {
    try {
      $("connection").textContent = "live";
      for await (const { event } of namaskah.verifications.watchVerification({
        name,
        afterSequence: seen,
      })) {
        failures = 0;
        if (event?.verification === undefined) continue;
        const sequence =
          event.type === VerificationEventType.SNAPSHOT ? event.verification.lastSequence : event.sequence;
        if (sequence > seen) seen = sequence;
        showVerification(event.verification);
        const item = document.createElement("li");
        item.textContent = VerificationEventType[event.type];
        $("events").append(item);
      }
      $("connection").textContent = "ended";
      break;
    } catch (err) {
      if (!transient(err) || ++failures > 60) throw err;
      $("connection").textContent = "reconnecting…";
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  await showBalance();
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("error").textContent = "";
  try {
    await namaskah.login(value("email"), $<HTMLInputElement>("password").value);
    const { user } = await namaskah.auth.getMe({});
    $("account-email").textContent = user?.email ?? "";
    await showBalance();
    $("login-form").hidden = true;
    $("account").hidden = false;
  } catch (err) {
    showError(err);
  }
});

$("buy-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("error").textContent = "";
  $("events").replaceChildren();
  $("code").textContent = "…";
  try {
    const { verification } = await namaskah.verifications.createVerification({
      service: value("service"),
      country: value("country"),
      requestId: crypto.randomUUID(),
    });
    if (verification === undefined) return;
    showVerification(verification);
    await showBalance();
    await watch(verification.name);
  } catch (err) {
    showError(err);
  }
});
