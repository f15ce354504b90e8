# Any volume of the cluster, by name: here the one the resource example creates.
data "holdfast_volume" "pgdata" {
  name = holdfast_volume.pgdata.name
}

output "pgdata_replicas_on" {
  value = data.holdfast_volume.pgdata.replica_nodes
}
