"""Real directory servers for the directory tests, started on loopback.

`install.sh` installs Debian's OpenLDAP and Samba packages (`make directory-servers`);
`openldap.OpenLdapServer` runs slapd from a throwaway config on a free port;
`samba_ad.SambaAdServer` provisions and runs a Samba AD DC on 127.0.0.1:389.
Both are loaded from one `tree.DirectoryTree`, so the same tests run against both.
"""
