# frozen_string_literal: true

# A member of the cluster's embedded etcd, on the hosts OnPremNodeGroup chose (node['holdfast_cookbook']['etcd']).
# Clients and peers over mutual TLS with etcd's own CA (`holdfast etcd init`: the data bag item's `etcd_member`,
# `{"ca", "crt", "key"}`); roles and auth are the operator's, once, from where etcd's root certificate is kept
# (`holdfast etcd grant`): no host holds etcd's CA key or root's certificate.
etcd = node['holdfast_cookbook']['etcd']
settings = node['holdfast_cookbook']
member = data_bag_item(settings['secrets_data_bag'], settings['secrets_data_bag_item'])['etcd_member']
raise 'holdfast: an etcd member needs `etcd_member` (ca, crt, key) in the data bag item' unless member

tls_dir = '/etc/etcd/holdfast'

package platform_family?('debian') ? 'etcd-server' : 'etcd'

directory tls_dir do
  recursive true
  mode '0700'
  owner 'etcd'
end

{ 'ca.crt' => 'ca', 'member.crt' => 'crt', 'member.key' => 'key' }.each do |name, part|
  file ::File.join(tls_dir, name) do
    content member.fetch(part)
    mode name.end_with?('.key') ? '0600' : '0644'
    owner 'etcd'
    sensitive true
    notifies :restart, 'service[etcd]'
  end
end

file '/etc/default/etcd' do
  content <<~ENV
    ETCD_NAME=#{etcd['name']}
    ETCD_DATA_DIR=/var/lib/etcd/holdfast
    ETCD_LISTEN_CLIENT_URLS=https://#{etcd['address']}:#{etcd['client_port']}
    ETCD_ADVERTISE_CLIENT_URLS=https://#{etcd['address']}:#{etcd['client_port']}
    ETCD_LISTEN_PEER_URLS=https://#{etcd['address']}:#{etcd['peer_port']}
    ETCD_INITIAL_ADVERTISE_PEER_URLS=https://#{etcd['address']}:#{etcd['peer_port']}
    ETCD_INITIAL_CLUSTER=#{etcd['initial_cluster']}
    ETCD_INITIAL_CLUSTER_STATE=new
    ETCD_INITIAL_CLUSTER_TOKEN=holdfast-#{node['holdfast']['cluster']}
    ETCD_CERT_FILE=#{tls_dir}/member.crt
    ETCD_KEY_FILE=#{tls_dir}/member.key
    ETCD_TRUSTED_CA_FILE=#{tls_dir}/ca.crt
    ETCD_CLIENT_CERT_AUTH=true
    ETCD_PEER_CERT_FILE=#{tls_dir}/member.crt
    ETCD_PEER_KEY_FILE=#{tls_dir}/member.key
    ETCD_PEER_TRUSTED_CA_FILE=#{tls_dir}/ca.crt
    ETCD_PEER_CLIENT_CERT_AUTH=true
  ENV
  notifies :restart, 'service[etcd]'
end

service 'etcd' do
  action %i(enable start)
end
