# frozen_string_literal: true

unified_mode true
provides :holdfast_config
use 'partial/_common'

description "Writes the agent config file, the API token and the node's one-time join token, and formats and " \
            'mounts the data devices as storage pools. The agent enrolls with the join token; no CA key is handed over.'

property :config, Hash,
         required: true,
         description: "The agent's settings, exactly as `holdfast agent --config` reads them (node['holdfast'])."

property :token, String,
         sensitive: true,
         description: "The cluster's API token, written to `<dataDir>/token` (mode 0600)."

property :join_token, String,
         sensitive: true,
         description: "This node's one-time join token (`holdfast cluster join-token create --node ID`), written " \
                      'to `<dataDir>/join-token` (mode 0600) until the node has its certificate.'

property :etcd_client, Hash,
         sensitive: true,
         description: "The cluster's etcd client certificate, `{\"ca\" => PEM, \"crt\" => PEM, \"key\" => PEM}` " \
                      '(`holdfast etcd client`), written where the config\'s etcdCa, etcdCert and etcdKey say.'

property :devices, Array,
         default: [],
         description: 'Block devices to format once (ext4) and mount as pools: `[{"device" => ..., "pool" => ...}]`.'

load_current_value do |new_resource|
  current_value_does_not_exist! unless ::File.exist?(new_resource.config_path)
  config JSON.parse(::File.read(new_resource.config_path))
end

action :create do
  data_dir = new_resource.config.fetch('dataDir')

  new_resource.devices.each_with_index do |drive, i|
    execute "format #{drive['device']}" do
      command ['mkfs.ext4', '-q', '-L', "holdfast#{i}", drive['device']]
      not_if { shell_out('blkid', drive['device']).exitstatus.zero? }
    end

    directory drive['pool'] do
      recursive true
    end

    mount drive['pool'] do
      device drive['device']
      fstype 'ext4'
      options %w(defaults nofail)
      action %i(mount enable)
    end
  end

  directory data_dir do
    recursive true
    mode '0700'
  end

  if new_resource.token
    file ::File.join(data_dir, 'token') do
      content "#{new_resource.token}\n"
      mode '0600'
      sensitive true
    end
  end

  etcd_files = { 'ca' => 'etcdCa', 'crt' => 'etcdCert', 'key' => 'etcdKey' }
  if new_resource.config['etcdCert']
    unless new_resource.etcd_client
      raise "holdfast: the store is #{new_resource.config['store']}: the data bag item needs `etcd` (ca, crt, key)"
    end

    etcd_files.each do |part, setting|
      path = new_resource.config.fetch(setting)
      directory(::File.dirname(path)) do
        recursive true
        mode '0700'
      end
      file path do
        content new_resource.etcd_client.fetch(part)
        mode part == 'key' ? '0600' : '0644'
        sensitive true
      end
    end
  end

  converge_if_changed :config do
    directory ::File.dirname(new_resource.config_path) do
      recursive true
    end

    file new_resource.config_path do
      content Holdfast::Helpers.config_json(new_resource.config)
      mode '0644'
    end
  end

  # The agent asks `holdfast cluster sign` for its certificate with this token (config `joinToken` names the file);
  # once it has one the token is spent, and is not written again.
  tls_dir = new_resource.config['tlsDir'] || ::File.join(data_dir, 'tls')
  if new_resource.join_token && !::File.exist?(::File.join(tls_dir, 'node.crt'))
    file ::File.join(data_dir, 'join-token') do
      content "#{new_resource.join_token}\n"
      mode '0600'
      sensitive true
    end
  end
end
