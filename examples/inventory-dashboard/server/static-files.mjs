// Serves the Vite build (dist/) and puts the session's CSRF token into
// index.html, as a Blade layout does with <meta name="csrf-token">.

import fs from 'node:fs/promises';
import path from 'node:path';

const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
};

// Written into index.html's csrf-token meta tag; Vite leaves it as it is.
const CSRF_PLACEHOLDER = '__CSRF_TOKEN__';

export class StaticFiles {
  constructor(distDir) {
    this.distDir = path.resolve(distDir);
  }

  /**
   * Returns {status, headers, body} for GET `urlPath`: a file under dist/,
   * or index.html for any other path so the front end can route it.
   */
  async get(urlPath, csrfToken) {
    let decoded;
    try {
      decoded = decodeURIComponent(urlPath);
    } catch {
      return { status: 400, headers: { 'content-type': 'text/plain' }, body: 'Invalid URL encoding\n' };
    }
    const file = path.resolve(this.distDir, `.${path.posix.normalize(`/${decoded}`)}`);
    if (file !== this.distDir && !file.startsWith(`${this.distDir}${path.sep}`)) {
      return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'Not found\n' };
    }

    const extension = path.extname(file);
    if (extension !== '' && extension !== '.html') {
      try {
        const body = await fs.readFile(file);
        // Vite puts a content hash into every asset name, so assets never change.
        const cache = file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache';
        return { status: 200, headers: { 'content-type': CONTENT_TYPES[extension] ?? 'application/octet-stream', 'cache-control': cache }, body };
      } catch (error) {
        if (error.code === 'ENOENT' || error.code === 'EISDIR') {
          return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'Not found\n' };
        }
        throw error;
      }
    }
    return this.#indexPage(csrfToken);
  }

  async #indexPage(csrfToken) {
    let html;
    try {
      html = await fs.readFile(path.join(this.distDir, 'index.html'), 'utf8');
    } catch (error) {
      if (error.code !== 'ENOENT') {
        throw error;
      }
      return {
        status: 503,
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        body: `The front end is not built: ${this.distDir}/index.html is missing. Run "npm run build" in examples/inventory-dashboard.\n`,
      };
    }
    // The token is hex, so it needs no HTML escaping.
    return {
      status: 200,
      headers: { 'content-type': CONTENT_TYPES['.html'], 'cache-control': 'no-store' },
      body: html.replace(CSRF_PLACEHOLDER, csrfToken),
    };
  }
}
