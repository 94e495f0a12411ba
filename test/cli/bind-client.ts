/** Helper process for tests: connect to the daemon of SVP_HOME, bind MDP port argv[2], say "bound", then wait to be killed. */
import { connectEmbedded } from "../../src/platform/embedded-node.ts";

const port = Number(process.argv[2]);
connectEmbedded({ home: process.env.SVP_HOME!, name: "bind-client", autostart: false }).then(
  async (t) => {
    await t.bind(port);
    process.stdout.write("bound\n");
    setInterval(() => {}, 60_000);
  },
  (err: unknown) => {
    process.stderr.write(String(err) + "\n");
    process.exit(1);
  },
);
