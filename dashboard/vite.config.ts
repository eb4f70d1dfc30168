import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The management API (LECTR_API_PORT, 8081) serves /api; the dev server proxies to it so
// the admin-session cookie stays same-origin.
export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/api": { target: "http://127.0.0.1:8081", changeOrigin: false },
    },
  },
  preview: {
    proxy: {
      "/api": { target: "http://127.0.0.1:8081", changeOrigin: false },
    },
  },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./src/test/setup.ts"],
    css: false,
    restoreMocks: true,
    // Pages render lazily and forms are typed key by key: the 5 s default is tight when
    // the machine is busy (CI runs the whole suite at once).
    testTimeout: 20_000,
  },
});
