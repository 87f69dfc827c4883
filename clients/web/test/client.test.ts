// The TypeScript client's session handling, from node over grpc-web through the real edge.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { connect } from "../src/client";
import { fundedAccount, startServer, type RunningServer } from "./harness";

let server: RunningServer;
before(async () => {
  server = await startServer({ NAMASKAH_SANDBOX_SMS_DELAY: "off" });
});
after(async () => server?.stop());

test("the session is refreshed before calls, once for calls made together", async () => {
  const { email, password } = await fundedAccount(server, 100n);
  // A margin longer than the token's life: every call finds the token about to expire.
  const namaskah = connect(server.edgeUrl, { refreshMarginMs: 24 * 3600_000 });
  await namaskah.login(email, password);
  const first = namaskah.tokens();
  assert.ok(first);

  // Five calls at once share one refresh: a refresh token used twice would end the
  // session and fail them.
  const answers = await Promise.all([1, 2, 3, 4, 5].map(() => namaskah.auth.getMe({})));
  for (const { user } of answers) assert.equal(user?.email, email);
  const second = namaskah.tokens();
  assert.ok(second);
  assert.notEqual(second.refreshToken, first.refreshToken);

  assert.equal((await namaskah.wallet.getBalance({})).balance?.minorUnits, 100n);
  assert.notEqual(namaskah.tokens()?.refreshToken, second.refreshToken);

  // The server rotated the tokens: the first refresh token is spent.
  const other = connect(server.edgeUrl);
  await assert.rejects(
    other.auth.refreshToken({ refreshToken: first.refreshToken }),
    (err) => err instanceof ConnectError && err.code === Code.Unauthenticated,
  );
});

test("without a login, calls that need an account are refused", async () => {
  const namaskah = connect(server.edgeUrl);
  assert.equal(namaskah.signedIn(), false);
  await assert.rejects(
    namaskah.wallet.getBalance({}),
    (err) => err instanceof ConnectError && err.code === Code.Unauthenticated,
  );
});
