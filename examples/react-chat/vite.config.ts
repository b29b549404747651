// Vite's own JSX transform (automatic runtime) is all React needs here.
// `npm run dev` serves the app and forwards /ws to a nerve node on :8080
// (`npm run dev` at the repository root), so the page's default server URL
// (its own host, /ws) reaches it; VITE_NERVE_URL points a build elsewhere.
import { defineConfig } from 'vite';

export default defineConfig({
  server: {
    proxy: { '/ws': { target: 'ws://127.0.0.1:8080', ws: true } },
  },
});
