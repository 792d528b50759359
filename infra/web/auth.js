// Sign-in for the upload page: Cognito InitiateAuth (USER_PASSWORD_AUTH) against the user
// pool that GET /config names, locally or on AWS. Tokens live in memory only (never in
// storage): a reload signs out. The ID token is refreshed with the refresh token a minute
// before it expires.

const REFRESH_MARGIN_MS = 60_000;

export class AuthError extends Error {}

function claimsOf(idToken) {
  const part = idToken.split(".")[1] || "";
  const text = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0))));
}

export class Session {
  constructor() {
    this.config = null; // { mode, endpoint, userPoolId, clientId } from GET /config
    this.idToken = null;
    this.refreshToken = null;
    this.user = null;
    this.timer = null;
    this.listeners = [];
  }

  /** True when the API needs a signed-in user (AuthMode cognito). */
  get required() {
    return this.config?.mode === "cognito";
  }

  configure(config) {
    this.config = config || { mode: "none" };
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  notify() {
    for (const listener of this.listeners) listener(this);
  }

  async call(target, body) {
    let response;
    try {
      response = await fetch(this.config.endpoint, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": `AWSCognitoIdentityProviderService.${target}`,
        },
        body: JSON.stringify(body),
      });
    } catch {
      throw new AuthError("The sign-in service could not be reached.");
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new AuthError(answer.message || answer.Message || `HTTP ${response.status}`);
    return answer;
  }

  async signIn(username, password) {
    const answer = await this.call("InitiateAuth", {
      AuthFlow: "USER_PASSWORD_AUTH",
      ClientId: this.config.clientId,
      AuthParameters: { USERNAME: username, PASSWORD: password },
    });
    if (!answer.AuthenticationResult) {
      throw new AuthError(`This account needs a step the page does not support (${answer.ChallengeName}).`);
    }
    this.refreshToken = answer.AuthenticationResult.RefreshToken;
    this.accept(answer.AuthenticationResult);
  }

  accept(result) {
    this.idToken = result.IdToken;
    const claims = claimsOf(this.idToken);
    this.user = claims["cognito:username"] || claims.email || claims.sub;
    clearTimeout(this.timer);
    const wait = Math.max(claims.exp * 1000 - Date.now() - REFRESH_MARGIN_MS, 5_000);
    this.timer = setTimeout(() => this.refresh().catch(() => this.signOut()), wait);
    this.notify();
  }

  async refresh() {
    const answer = await this.call("InitiateAuth", {
      AuthFlow: "REFRESH_TOKEN_AUTH",
      ClientId: this.config.clientId,
      AuthParameters: { REFRESH_TOKEN: this.refreshToken },
    });
    this.accept(answer.AuthenticationResult);
  }

  signOut() {
    clearTimeout(this.timer);
    this.idToken = this.refreshToken = this.user = null;
    this.notify();
  }

  /** The Authorization header for the API, empty when signed out. */
  headers() {
    return this.idToken ? { Authorization: `Bearer ${this.idToken}` } : {};
  }
}

/** Wire the sign-in form of index.html to `session`. */
export function wireSignIn(session, root = document) {
  const form = root.getElementById("sign-in");
  const account = root.getElementById("account");
  const who = root.getElementById("signed-in-as");
  const problem = root.getElementById("sign-in-error");
  const section = root.getElementById("auth");
  const render = () => {
    section.hidden = !session.required;
    form.hidden = Boolean(session.user);
    account.hidden = !session.user;
    who.textContent = session.user ? `Signed in as ${session.user}` : "";
  };
  session.onChange(render);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.hidden = true;
    const data = new FormData(form);
    try {
      await session.signIn(String(data.get("username")), String(data.get("password")));
      form.reset();
      root.getElementById("sign-out").focus(); // the form is gone: keep the keyboard's place
    } catch (error) {
      problem.textContent = `Could not sign in: ${error.message}`;
      problem.hidden = false;
    }
  });
  root.getElementById("sign-out").addEventListener("click", () => session.signOut());
  render();
}
