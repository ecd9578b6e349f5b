import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['agent/**/*.test.ts', 'collector/**/*.test.ts', 'rules/**/*.test.ts', 'scripts/**/*.test.ts', 'test/**/*.test.ts'],
    // Fixture /proc trees hold real cwd links (to /, to home folders): never walk into them.
    exclude: ['**/node_modules/**', '**/fixtures/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
