export { Membership, type MembershipOptions, type NodeInfo, type NodeStatus } from "./membership.js";
