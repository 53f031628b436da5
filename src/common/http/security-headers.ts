import type { RequestHandler } from 'express';
import helmet from 'helmet';

/**
 * Helmet's headers, fitted to a service that is often reached over plain HTTP on a LAN or VM
 * address. Helmet's defaults assume HTTPS: `upgrade-insecure-requests` makes a browser rewrite
 * every asset of the Swagger UI to `https://…` (which a plain-HTTP server cannot answer, so /docs
 * renders blank on any address but loopback, which browsers never upgrade), and HSTS tells it to
 * refuse plain HTTP to this host from then on; Cross-Origin-Opener-Policy is ignored over plain HTTP
 * with an error in the console. All three are sent only when the operator says the
 * service is reached over HTTPS (`BEHIND_HTTPS=true`); the rest of the policy stays strict: scripts
 * only from this origin, no plugins, no framing. The Swagger UI works under it (its page loads its
 * scripts and styles from /docs, and its requests go to this origin).
 */
export function securityHeaders(behindHttps: boolean): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: true,
      directives: { upgradeInsecureRequests: behindHttps ? [] : null },
    },
    strictTransportSecurity: behindHttps,
    // Browsers ignore COOP on an untrustworthy (plain-HTTP, non-loopback) origin, with a console error.
    crossOriginOpenerPolicy: behindHttps,
  });
}
