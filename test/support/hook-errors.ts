import { type Test, test } from "uvu";

/**
 * uvu 0.5 runs `before` and `after` hooks inside a try whose `finally` returns, so an error thrown there vanishes:
 * the file shows "(0 / N)" and nothing says why. This wraps a suite's `before` and `after` so that the error is
 * printed (then thrown on, so the suite still stops). scripts/run-tests.mjs loads this file ahead of every test
 * file, which covers the default `test` suite; a file that makes its own with `suite()` passes each one here.
 */
export function reportHookErrors(suite: Test): Test {
  for (const name of ["before", "after"] as const) {
    const register = suite[name];
    const wrapped = ((hook: Parameters<typeof register>[0]) =>
      register(async (context) => {
        try {
          await hook(context);
        } catch (err) {
          process.stderr.write(
            `${name} hook failed: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`,
          );
          throw err;
        }
      })) as typeof register;
    wrapped.each = register.each;
    suite[name] = wrapped;
  }
  return suite;
}

reportHookErrors(test);
