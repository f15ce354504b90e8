export { Membership, type MembershipOptions, type NodeInfo, type NodeStatus } from "./membership.js";
export { type PlacementNode, type PlacementRequest, placeReplicas } from "./placement.js";
