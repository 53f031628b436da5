import { ServeStaticModule } from '@nestjs/serve-static';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';

/** Where `npm run build:web` puts the chat page (web/), beside src/ and dist/ alike. */
export const CHAT_PAGE_ROOT = join(__dirname, '..', 'web', 'dist');

/**
 * The chat page at /app/: static files, behind the same security headers (CSP included) as the
 * API. The page routes by `#/…`, so only `/app/` itself answers with index.html; any other missing
 * file is the API's 404 problem, not a page. Vite names assets by content hash: they never change.
 */
export const ChatPageModule = ServeStaticModule.forRoot({
  rootPath: CHAT_PAGE_ROOT,
  serveRoot: '/app',
  renderPath: '/',
  serveStaticOptions: {
    index: 'index.html',
    setHeaders(res: ServerResponse, path: string) {
      res.setHeader(
        'Cache-Control',
        path.includes(`${join('dist', 'assets')}`)
          ? 'public, max-age=31536000, immutable'
          : 'no-cache',
      );
    },
  },
});
