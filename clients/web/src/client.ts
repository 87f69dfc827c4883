// The browser's way in: typed clients of the generated services over grpc-web, with the
// access token from Login on every call and refreshed before it runs out.
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AuthService, type TokenPair } from "./gen/namaskah/v1/auth_pb";
import { SandboxService } from "./gen/namaskah/v1/sandbox_pb";
import { VerificationService } from "./gen/namaskah/v1/verification_pb";
import { WalletService } from "./gen/namaskah/v1/wallet_pb";
import type { Money } from "./gen/namaskah/v1/common_pb";

export interface Options {
  /** Refresh the access token when it has less than this left (default 30 s). */
  refreshMarginMs?: number;
}

export interface Namaskah {
  auth: Client<typeof AuthService>;
  verifications: Client<typeof VerificationService>;
  wallet: Client<typeof WalletService>;
  sandbox: Client<typeof SandboxService>;
  /** Signs in; later calls carry the session's access token. */
  login(email: string, password: string): Promise<void>;
  signedIn(): boolean;
  /** The session's current tokens (undefined before `login`). */
  tokens(): TokenPair | undefined;
}

/** Clients for the edge at `baseUrl` (for example `http://localhost:8080`). */
export function connect(baseUrl: string, options: Options = {}): Namaskah {
  const margin = options.refreshMarginMs ?? 30_000;
  // Login and RefreshToken go through a transport without credentials.
  const anonymous: Transport = createGrpcWebTransport({ baseUrl });
  const anonymousAuth = createClient(AuthService, anonymous);
  let tokens: TokenPair | undefined;
  let refreshing: Promise<void> | undefined;

  const expiresSoon = (t: TokenPair) =>
    t.accessTokenExpireTime !== undefined &&
    timestampDate(t.accessTokenExpireTime).getTime() - Date.now() < margin;

  async function refresh(current: TokenPair): Promise<void> {
    const answer = await anonymousAuth.refreshToken({ refreshToken: current.refreshToken });
    tokens = answer.tokens;
  }

  const bearer: Interceptor = (next) => async (req) => {
    if (tokens !== undefined && expiresSoon(tokens)) {
      // One refresh at a time: refresh tokens rotate, and a second use of the same one
      // would revoke the session.
      refreshing ??= refresh(tokens).finally(() => (refreshing = undefined));
      await refreshing;
    }
    if (tokens !== undefined) {
      req.header.set("authorization", `Bearer ${tokens.accessToken}`);
    }
    return next(req);
  };
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [bearer] });

  return {
    auth: createClient(AuthService, transport),
    verifications: createClient(VerificationService, transport),
    wallet: createClient(WalletService, transport),
    sandbox: createClient(SandboxService, transport),
    async login(email, password) {
      const answer = await anonymousAuth.login({ email, password });
      tokens = answer.tokens;
    },
    signedIn: () => tokens !== undefined,
    tokens: () => tokens,
  };
}

/** `12.34 USD`, from integer minor units (never through a float). */
export function formatMoney(money: Money | undefined): string {
  if (money === undefined) return "";
  const negative = money.minorUnits < 0n;
  const units = negative ? -money.minorUnits : money.minorUnits;
  const cents = (units % 100n).toString().padStart(2, "0");
  return `${negative ? "-" : ""}${units / 100n}.${cents} ${money.currencyCode}`;
}
