export {
  Membership,
  type MembershipOptions,
  type NodeInfo,
  NodeInfoSchema,
  type NodeStatus,
} from "./membership.js";
export { type PlacementNode, type PlacementRequest, placementFor, placeReplicas } from "./placement.js";
