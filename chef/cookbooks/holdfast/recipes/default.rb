# frozen_string_literal: true

# Joins this host to its Holdfast cluster from the JSON OnPremNodeGroup rendered for it (`chef-client -z -j`):
# node['holdfast'] is the agent config, written unchanged; node['holdfast_cookbook'] says what to install and where
# the secrets are (an encrypted data bag item named after the cluster, with `token`, `join_tokens`, one per node id,
# made with `holdfast cluster join-token create`, and `etcd`, the cluster's etcd client certificate; on the etcd
# members also `etcd_member`, the members' certificate). No CA key: the signer keeps it.
settings = node['holdfast_cookbook']
secrets = data_bag_item(settings['secrets_data_bag'], settings['secrets_data_bag_item'])

include_recipe 'holdfast::etcd' if settings['etcd']

holdfast_installation 'holdfast' do
  version settings['version']
  url settings['artifact_url']
  sha256 settings['artifact_sha256']
  packages settings['packages']
  install_dir settings['install_dir']
end

agent_config = Holdfast::Helpers.agent_config(node['holdfast'], node)
join_tokens = secrets['join_tokens'] || {}

holdfast_config 'holdfast' do
  config agent_config
  token secrets['token']
  join_token join_tokens[agent_config['nodeId']]
  etcd_client secrets['etcd']
  devices settings['devices']
  install_dir settings['install_dir']
  config_path settings['config_path']
  notifies :restart, 'holdfast_service[holdfast]'
end

holdfast_service 'holdfast' do
  install_dir settings['install_dir']
  config_path settings['config_path']
  action :start
end
