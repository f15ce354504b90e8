export { type DevState, type DevUpOptions, devDown, devStart, devStop, devUp } from "./dev-cluster.js";
