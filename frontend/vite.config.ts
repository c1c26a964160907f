// Builds src/ into static/frontend/, an app static folder that Django's staticfiles finds and
// whitenoise serves at /static/frontend/. The page itself (index.html) is served by frontend/views.py
// at / and the app's routes, so asset URLs are absolute under /static/frontend/.
import { defineConfig } from "vitest/config";

export default defineConfig(({ command }) => ({
  base: command === "build" ? "/static/frontend/" : "/",
  build: {
    outDir: "static/frontend",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
  },
  server: {
    // `npm run dev` beside `./dev demo`: the API comes from Django on port 8000.
    proxy: { "/api": "http://127.0.0.1:8000", "/static": "http://127.0.0.1:8000" },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
}));
