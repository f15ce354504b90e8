# frozen_string_literal: true

# A member of the cluster's embedded etcd, on the hosts OnPremNodeGroup chose (node['holdfast_cookbook']['etcd']).
etcd = node['holdfast_cookbook']['etcd']

package platform_family?('debian') ? 'etcd-server' : 'etcd'

file '/etc/default/etcd' do
  content <<~ENV
    ETCD_NAME=#{etcd['name']}
    ETCD_DATA_DIR=/var/lib/etcd/holdfast
    ETCD_LISTEN_CLIENT_URLS=http://#{etcd['address']}:#{etcd['client_port']}
    ETCD_ADVERTISE_CLIENT_URLS=http://#{etcd['address']}:#{etcd['client_port']}
    ETCD_LISTEN_PEER_URLS=http://#{etcd['address']}:#{etcd['peer_port']}
    ETCD_INITIAL_ADVERTISE_PEER_URLS=http://#{etcd['address']}:#{etcd['peer_port']}
    ETCD_INITIAL_CLUSTER=#{etcd['initial_cluster']}
    ETCD_INITIAL_CLUSTER_STATE=new
    ETCD_INITIAL_CLUSTER_TOKEN=holdfast-#{node['holdfast']['cluster']}
  ENV
  notifies :restart, 'service[etcd]'
end

service 'etcd' do
  action %i(enable start)
end
