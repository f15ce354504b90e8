# frozen_string_literal: true

# node['holdfast'] is the agent's own configuration, as OnPremNodeGroup renders it; it has no defaults here, so
# what the agent reads is exactly what the construct rendered. node['holdfast_cookbook'] holds what only the
# cookbook needs; the construct renders every key below too.
default['holdfast_cookbook']['install_dir'] = '/opt/holdfast'
default['holdfast_cookbook']['config_path'] = '/etc/holdfast/agent.json'
default['holdfast_cookbook']['devices'] = []
default['holdfast_cookbook']['secrets_data_bag'] = 'holdfast'
default['holdfast_cookbook']['packages'] =
  if platform_family?('rhel', 'amazon', 'fedora')
    %w(nodejs fuse-libs e2fsprogs)
  else
    %w(nodejs libfuse2 e2fsprogs)
  end
