# frozen_string_literal: true

property :install_dir, String,
         default: '/opt/holdfast',
         description: 'Where artifacts are unpacked; `current` links to the installed version.'

property :config_path, String,
         default: '/etc/holdfast/agent.json',
         description: 'The agent config file: the same path the AWS user data writes.'
