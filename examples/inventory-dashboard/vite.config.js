import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// `npm run dev` serves the front end with hot reload on 127.0.0.1:5173 and
// passes API and auth requests to the demo backend (BACKEND_URL, default
// the backend's default address).
const backend = process.env.BACKEND_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
  plugins: [react()],
  server: {
    host: '127.0.0.1',
    proxy: {
      '/api': backend,
      '/login': backend,
      '/logout': backend,
      '/broadcasting': backend,
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
  },
});
