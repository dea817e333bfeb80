// A real OpenID Provider on loopback for `scripts/dev.py test-sso`: one confidential client
// (this service) and any login name as an account; devInteractions serve login and consent.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const redirectUri = process.env.REDIRECT_URI;
const clientSecret = process.env.CLIENT_SECRET;
if (!port || !redirectUri || !clientSecret) {
  throw new Error('PORT, REDIRECT_URI and CLIENT_SECRET are required');
}

// Login names the tests use; any other name is an account with a verified address of its own.
const ACCOUNTS = {
  unverified: { email: 'unverified@example.com', email_verified: false },
};

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'recipe-service',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['given_name', 'family_name'],
  },
  async findAccount(ctx, id) {
    const claims = ACCOUNTS[id] ?? { email: `${id}@example.com`, email_verified: true };
    return {
      accountId: id,
      async claims() {
        return { sub: id, given_name: 'Real', family_name: 'Provider', ...claims };
      },
    };
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  // Plain-HTTP cookies on loopback: the provider runs without TLS here.
  cookies: { long: { secure: false }, short: { secure: false } },
});
provider.proxy = false;
provider.listen(port, '127.0.0.1', () => console.log(`ready on ${port}`));
