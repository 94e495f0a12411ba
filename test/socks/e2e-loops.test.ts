/**
 * The end-to-end suite (e2e-suite.ts) with two event loops: the main thread and a worker
 * thread accept on the same port (reusePort or a shared descriptor, whichever this runtime
 * has), so each connection lands on either; half-close, large transfers, refusals, every
 * protocol and the handshake timer must hold on both. (Limits and shutdown across loops:
 * loops.test.ts.)
 */
import { e2eSuite } from "./e2e-suite.ts";

e2eSuite(2, false);
