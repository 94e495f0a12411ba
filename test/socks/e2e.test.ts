/** The end-to-end suite (e2e-suite.ts) with one event loop: the proxy as a library uses by default. */
import { e2eSuite } from "./e2e-suite.ts";

e2eSuite(1);
