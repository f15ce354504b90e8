# frozen_string_literal: true

require 'json'

module Holdfast
  # Logic shared by the holdfast resources, kept free of Chef so that it can be loaded and tested with plain Ruby.
  module Helpers
    UNITS = {
      '' => 1024**3, 'B' => 1, 'K' => 1024, 'M' => 1024**2, 'G' => 1024**3, 'T' => 1024**4, 'P' => 1024**5
    }.freeze

    module_function

    # The agent config with the host's own facts (Ohai's hostname and ipaddress) where the attributes leave the
    # node id or the API address out. OnPremNodeGroup always renders both; a hand-written role may not.
    def agent_config(attributes, facts, api_port = 9001)
      config = attributes.to_h.transform_keys(&:to_s)
      config['nodeId'] ||= facts['hostname']
      config['api'] ||= "#{facts['ipaddress']}:#{api_port}"
      config
    end

    # The file `holdfast agent --config` reads: the config as JSON, keys as the agent spells them.
    def config_json(config)
      "#{JSON.pretty_generate(config)}\n"
    end

    # The systemd unit, the same as the AWS user data writes (constructs/user-data.ts).
    def unit_content(install_dir, config_path)
      <<~UNIT
        [Unit]
        Description=Holdfast node agent
        Wants=network-online.target
        After=network-online.target local-fs.target

        [Service]
        ExecStart=#{::File.join(install_dir, 'current/bin/holdfast')} agent --config #{config_path}
        Restart=always
        RestartSec=2
        LimitNOFILE=65536

        [Install]
        WantedBy=multi-user.target
      UNIT
    end

    # The CLI's environment for one agent: its API, token and, for an https API, the CA its certificate is signed by.
    def cli_env(api, token, ca_file)
      env = { 'HOLDFAST_API' => api, 'HOLDFAST_TOKEN' => token }
      env['HOLDFAST_CA'] = ca_file if ca_file
      env
    end

    # The `holdfast` launcher of the installed version.
    def cli(install_dir)
      ::File.join(install_dir, 'current/bin/holdfast')
    end

    # Bytes in a size as the volume spec writes it (`20G`, `512MiB`, `4096B`; a bare number is GiB); nil when
    # unreadable.
    def parse_size(text)
      match = /\A(\d+)\s*(?:([KMGTP])(?:i?B)?|(B))?\z/i.match(text.to_s.strip)
      match && (match[1].to_i * UNITS.fetch((match[2] || match[3] || '').upcase))
    end
  end
end
