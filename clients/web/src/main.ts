// The page: sign in, buy a number, and show its code as soon as the stream brings it.
import { ConnectError } from "@connectrpc/connect";
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
    err instanceof ConnectError ? `${err.code}: ${err.rawMessage}` : String(err);
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

async function watch(name: string) {
  // A server stream over grpc-web: the current state first, then every change until the
  // verification ends.
  for await (const { event } of namaskah.verifications.watchVerification({ name })) {
    if (event?.verification === undefined) continue;
    showVerification(event.verification);
    const item = document.createElement("li");
    item.textContent = VerificationEventType[event.type];
    $("events").append(item);
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
    $("login-form").hidden = true;
    $("account").hidden = false;
    await showBalance();
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
