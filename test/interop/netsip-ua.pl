#!/usr/bin/perl
# A SIP user agent built on Perl's Net::SIP (Debian package libnet-sip-perl), used by
# test/interop/netsip.test.ts to talk to a Parley server the way a foreign SIP client would.
#
#   perl netsip-ua.pl --server 127.0.0.1:5060 --user carol --password pw --domain localhost \
#       [--to sip:alice@localhost --text hello] [--expect N] [--timeout SECONDS] [--no-unregister]
#
# Over UDP, through the server as outgoing proxy (everything is sent to --server):
#  1. REGISTER sip:DOMAIN for sip:USER@DOMAIN with digest authentication (Net::SIP answers the
#     MD5 challenge; it ignores the others), Contact sip:USER@<its own ip:port>.
#     Prints `REGISTERED <status>` on success, else `REGISTER-FAILED <status or errno>` and exits 1.
#  2. With --to: one MESSAGE to that AOR, Content-Type text/plain;charset=utf-8, body --text,
#     digest-authenticated when challenged. Prints `SENT <final status>` (or `SENT-FAILED <errno>`).
#  3. Every MESSAGE that arrives is answered 200 and printed as one line:
#     `RECEIVED <from-uri> <content-type, spaces removed> <body as a JSON string>`
#     (the body may span lines, e.g. message/cpim, hence JSON).
#     Other requests: OPTIONS 200, anything else 405.
#  4. Runs until N MESSAGEs were received (then `DONE`) or --timeout passed (then `TIMEOUT`),
#     then unregisters (Expires: 0; `UNREGISTERED <status>`) unless --no-unregister.
# Exit status: 0 all done, 1 registration failed, 2 bad usage, 3 timeout or MESSAGE not 2xx.
use strict;
use warnings;
use Getopt::Long qw(GetOptions);
use IO::Socket::IP;
use JSON::PP ();
use Net::SIP;
use Net::SIP::Util qw(sip_hdrval2parts);

$| = 1;

my %opt = (expect => 0, timeout => 20, unregister => 1, expires => 300);
GetOptions(
    'server=s'    => \$opt{server},
    'user=s'      => \$opt{user},
    'password=s'  => \$opt{password},
    'domain=s'    => \$opt{domain},
    'to=s'        => \$opt{to},
    'text=s'      => \$opt{text},
    'expect=i'    => \$opt{expect},
    'timeout=f'   => \$opt{timeout},
    'expires=i'   => \$opt{expires},
    'unregister!' => \$opt{unregister},
    'debug=i'     => \$opt{debug},
) or exit 2;
for (qw(server user password domain)) {
    defined $opt{$_} or do { print STDERR "netsip-ua: --$_ is required\n"; exit 2 };
}
if (defined $opt{to} xor defined $opt{text}) {
    print STDERR "netsip-ua: --to and --text go together\n";
    exit 2;
}
Net::SIP::Debug->level($opt{debug}) if $opt{debug};

my $json = JSON::PP->new->ascii->allow_nonref; # non-ASCII as \uXXXX: stdout stays 7-bit
my $deadline = time() + $opt{timeout};
my $aor = "sip:$opt{user}\@$opt{domain}";

# Our own socket on an ephemeral port: Net::SIP::Leg given port 0 would try 5060, 5062..5100 first.
my ($server_host) = $opt{server} =~ m{^\[?([^\]]+?)\]?(?::\d+)?$};
my $sock = IO::Socket::IP->new(Proto => 'udp', LocalHost => $server_host, LocalPort => 0)
    or die "netsip-ua: cannot bind a UDP socket on $server_host: $@";

my $ua = Net::SIP::Simple->new(
    leg            => $sock,
    outgoing_proxy => $opt{server},
    from           => $aor,
    auth           => [ $opt{user}, $opt{password} ],
    domain         => $opt{domain},
);
my $endpoint = $ua->{endpoint};
print "LISTENING ", $sock->sockhost, ":", $sock->sockport, "\n";

# Incoming requests outside any context of ours (the server's deliveries).
my $received = 0;
my $all_received = $opt{expect} <= 0;
$endpoint->set_application(sub {
    my ($ep, $ctx, $request, $leg, $from) = @_;
    my $method = $request->method;
    my $code = $method eq 'MESSAGE' || $method eq 'OPTIONS' ? 200 : 405;
    my $response = $request->create_response($code, $code == 200 ? 'OK' : 'Method Not Allowed',
        $code == 405 ? { allow => 'MESSAGE, OPTIONS' } : {});
    $ep->new_response($ctx, $response, $leg, $from);
    $ep->close_context($ctx);
    return if $method ne 'MESSAGE';
    my ($from_uri) = sip_hdrval2parts(from => scalar $request->get_header('from'));
    $from_uri = $1 if $from_uri =~ m{<([^>]*)>};
    my $type = $request->get_header('content-type') // '';
    $type =~ s/\s+//g;
    my $body = ($request->as_parts)[3] // q();
    utf8::decode($body);
    $received++;
    print "RECEIVED $from_uri $type ", $json->encode($body), "\n";
    $all_received = 1 if $received >= $opt{expect};
});

sub remaining { my $r = $deadline - time(); return $r > 0 ? $r : 0.001 }

sub register {
    my ($expires) = @_;
    my $done;
    $ua->register(
        registrar => "sip:$opt{domain}",
        expires   => $expires,
        cb_final  => sub { my ($status, %info) = @_; $done = [ $status, %info ] },
    );
    $ua->loop(remaining(), \$done);
    return $done ? @$done : ('TIMEOUT');
}

my ($status, %info) = register($opt{expires});
if ($status ne 'OK') {
    print "REGISTER-FAILED ", ($info{code} // $info{errno} // $status), "\n";
    exit 1;
}
print "REGISTERED ", $info{packet}->code, "\n";

my $exit = 0;
if (defined $opt{to}) {
    my $result;
    my $body = $opt{text};
    utf8::encode($body) if utf8::is_utf8($body);
    $endpoint->new_request(
        'MESSAGE',
        { from => $aor, to => $opt{to}, auth => [ $opt{user}, $opt{password} ] },
        sub {
            my ($ep, $ctx, $errno, $code, $packet) = @_;
            $result = [ $errno, $code ];
        },
        $body,
        'content-type' => 'text/plain;charset=utf-8',
    );
    $ua->loop(remaining(), \$result);
    if (!$result) {
        print "SENT-FAILED timeout\n";
        $exit = 3;
    } elsif ($result->[1]) {
        print "SENT $result->[1]\n";
        $exit = 3 if $result->[1] !~ /^2/;
    } else {
        print "SENT-FAILED ", ($result->[0] + 0), "\n";
        $exit = 3;
    }
}

$ua->loop(remaining(), \$all_received) if !$all_received;
if ($received >= $opt{expect}) {
    print "DONE $received\n";
} else {
    print "TIMEOUT $received\n";
    $exit = 3;
}

if ($opt{unregister}) {
    $deadline = time() + 5;
    my ($ustatus, %uinfo) = register(0);
    print $ustatus eq 'OK' ? "UNREGISTERED " . $uinfo{packet}->code . "\n"
        : "UNREGISTER-FAILED " . ($uinfo{code} // $uinfo{errno} // $ustatus) . "\n";
}
exit $exit;
