data "holdfast_cluster" "this" {}

output "nodes_up" {
  value = [for node in data.holdfast_cluster.this.nodes : node.id if node.state == "up"]
}
