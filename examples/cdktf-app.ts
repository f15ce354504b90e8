/**
 * Every example stack in one CDKTF app, for the repository's cdktf.json: `npx cdktf synth` at the root writes
 * aws-three-az, hybrid and volumes-gitops to ./cdktf.out (and the hybrid hosts' Chef JSON to ./cdktf.out/chef).
 * Each example also runs alone from its own directory.
 */
import { join } from "node:path";
import { App } from "../constructs/cdktf.js";
import { awsThreeAz } from "./aws-three-az/main.js";
import { hybrid } from "./hybrid/main.js";
import { volumesGitops } from "./volumes-gitops/main.js";

const app = new App();
awsThreeAz(app);
const { onPrem } = hybrid(app);
volumesGitops(app);
app.synth();
onPrem.writeChefAttributes(join(app.outdir, "chef"));
